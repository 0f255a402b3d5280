// The one numeric kernel of the browser runtime, and the memory it works in.
//
//   gemm(a, b, c, M, K, N):  C (M x N) += A (M x K) . B (K x N), row-major float32, N a multiple of 4,
//                            skipping zero entries of A (half of a ReLU's outputs are zero).
//
// It is WebAssembly SIMD (f32x4), assembled below from its opcodes in this file: no build step, nothing fetched.
// Scalar JavaScript runs these loops at about 1 ns per multiply-add here, 4-5x too slow for a 64x64 RGB conv decoder
// at 60 frames per second, and WebGL2 on a software renderer was slower still (see README, "Live Explore"). The
// same loop in plain JS is the fallback where WebAssembly SIMD is missing. network.js builds every layer from gemm;
// vae_core/export.py holds the reference maths in numpy.

const WASM = (() => {
  const uleb = (n) => { const out = []; do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n); return out; };
  const sleb = (n) => {
    const out = [];
    for (;;) {
      const b = n & 0x7f;
      n >>= 7;
      if ((n === 0 && !(b & 0x40)) || (n === -1 && (b & 0x40))) return [...out, b];
      out.push(b | 0x80);
    }
  };
  const vec = (items) => [...uleb(items.length), ...items.flat()];
  const name = (s) => vec([...s].map((c) => c.charCodeAt(0)));
  const section = (id, bytes) => [id, ...uleb(bytes.length), ...bytes];
  const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;
  const op = {
    block: [0x02, 0x40], loop: [0x03, 0x40], if: [0x04, 0x40], end: [0x0b], br: (d) => [0x0c, d], brIf: (d) => [0x0d, d],
    get: (i) => [0x20, ...uleb(i)], set: (i) => [0x21, ...uleb(i)], tee: (i) => [0x22, ...uleb(i)],
    i32: (v) => [0x41, ...sleb(v)], f32zero: [0x43, 0, 0, 0, 0], f32load: [0x2a, 2, 0],
    add: [0x6a], sub: [0x6b], shl: [0x74], ltU: [0x49], geU: [0x4f], f32ne: [0x5c],
    vload: [0xfd, 0x00, 4, 0], vstore: [0xfd, 0x0b, 4, 0], splat: [0xfd, 0x13], vadd: [0xfd, 0xe4, 0x01],
    vmul: [0xfd, 0xe6, 0x01],
  };
  const inc = (local, by) => [...op.get(local), ...op.i32(by), ...op.add, ...op.set(local)];
  // params a, b, c (byte offsets), M, K, N; locals m, k, bp, cp, cend, rowBytes, ap, cRow (i32), av (v128), a (f32)
  const [A, B, C, M, K, N, m, k, bp, cp, cend, rowBytes, ap, cRow, av, aval] = Array.from({ length: 16 }, (_, i) => i);
  const body = [
    ...op.get(N), ...op.i32(2), ...op.shl, ...op.set(rowBytes),
    ...op.get(A), ...op.set(ap), ...op.get(C), ...op.set(cRow), ...op.i32(0), ...op.set(m),
    ...op.block, ...op.loop, // for m in 0..M
    ...op.get(m), ...op.get(M), ...op.geU, ...op.brIf(1),
    ...op.get(B), ...op.set(bp), ...op.i32(0), ...op.set(k),
    ...op.block, ...op.loop, // for k in 0..K
    ...op.get(k), ...op.get(K), ...op.geU, ...op.brIf(1),
    ...op.get(ap), ...op.f32load, ...op.tee(aval), ...op.f32zero, ...op.f32ne,
    ...op.if, // a = A[m, k] != 0: C[m, :] += a * B[k, :], four columns per step
    ...op.get(aval), ...op.splat, ...op.set(av),
    ...op.get(cRow), ...op.tee(cp), ...op.get(rowBytes), ...op.add, ...op.set(cend),
    ...op.loop,
    ...op.get(cp), ...op.get(cp), ...op.vload, ...op.get(bp), ...op.vload, ...op.get(av), ...op.vmul, ...op.vadd,
    ...op.vstore,
    ...inc(bp, 16),
    ...op.get(cp), ...op.i32(16), ...op.add, ...op.tee(cp), ...op.get(cend), ...op.ltU, ...op.brIf(0),
    ...op.end,
    ...op.get(bp), ...op.get(rowBytes), ...op.sub, ...op.set(bp), // back to the start of B's row k
    ...op.end,
    ...op.get(bp), ...op.get(rowBytes), ...op.add, ...op.set(bp), // next row of B
    ...inc(ap, 4), ...inc(k, 1), ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(cRow), ...op.get(rowBytes), ...op.add, ...op.set(cRow),
    ...inc(m, 1), ...op.br(0),
    ...op.end, ...op.end, ...op.end,
  ];
  const code = [...vec([[...uleb(8), I32], [...uleb(1), V128], [...uleb(1), F32]]), ...body];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vec([[0x60, ...vec([I32, I32, I32, I32, I32, I32]), ...vec([])]])), // (i32 x 6) -> ()
    ...section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, ...uleb(1)]])), // imported memory
    ...section(3, vec([uleb(0)])),
    ...section(7, vec([[...name("gemm"), 0x00, ...uleb(0)]])),
    ...section(10, vec([[...uleb(code.length), ...code]])),
  ]);
})();

let wasmModule; // compiled once per tab; undefined: not tried yet, null: unavailable
function simdModule() {
  if (wasmModule === undefined) {
    try {
      wasmModule = typeof WebAssembly === "object" && WebAssembly.validate(WASM) ? new WebAssembly.Module(WASM) : null;
    } catch (err) {
      wasmModule = null;
    }
  }
  return wasmModule;
}

// The same loop in plain JavaScript (the fallback, and what the kernel computes).
function gemmJs(f, a, b, c, M, K, N) {
  for (let m = 0; m < M; m++) {
    const row = c + m * N;
    for (let k = 0; k < K; k++) {
      const v = f[a + m * K + k];
      if (v === 0) continue;
      const from = b + k * N;
      for (let n = 0; n < N; n++) f[row + n] += v * f[from + n];
    }
  }
}

// Float32 memory addressed by float offsets (16-byte aligned), with gemm over it. One heap per model: growing it
// replaces the buffer, so callers hold offsets, never views, across allocations and read `heap.f32` afresh.
class Heap {
  constructor(kernel = "auto") {
    const module = kernel === "js" ? null : simdModule();
    this.kernel = module ? "wasm-simd" : "js";
    this.used = 0;
    if (module) {
      this.memory = new WebAssembly.Memory({ initial: 16 });
      this.wasmGemm = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports.gemm;
    } else {
      this.buffer = new ArrayBuffer(1 << 20);
    }
    this.refresh();
  }

  refresh() {
    this.f32 = new Float32Array(this.memory ? this.memory.buffer : this.buffer);
  }

  alloc(n) {
    const start = this.used;
    this.used += Math.ceil(n / 4) * 4;
    const bytes = this.used * 4;
    if (bytes > this.f32.byteLength) {
      if (this.memory) {
        this.memory.grow(Math.ceil((bytes - this.memory.buffer.byteLength) / 65536));
      } else {
        const bigger = new ArrayBuffer(Math.max(bytes, 2 * this.buffer.byteLength));
        new Float32Array(bigger).set(this.f32);
        this.buffer = bigger;
      }
      this.refresh();
    }
    return start;
  }

  gemm(a, b, c, M, K, N) {
    if (N % 4) throw new Error(`gemm needs N divisible by 4, got ${N}`);
    if (this.wasmGemm) this.wasmGemm(4 * a, 4 * b, 4 * c, M, K, N);
    else gemmJs(this.f32, a, b, c, M, K, N);
  }
}
