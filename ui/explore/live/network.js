// The browser's networks: vae_core/export.py's programs (ops over one float32 blob, torch's layouts) compiled onto
// a Heap (gemm.js). Every layer with weights is one gemm plus a cheap reshuffle; activations are (batch, C, H, W)
// rows, as in torch. Reference maths: vae_core.export.run_program, reference_decode and reference_encode.

const ceil4 = (n) => Math.ceil(n / 4) * 4;
const product = (shape) => shape.reduce((a, b) => a * b, 1);

// linear: out (B, out) = x (B, in) . W^T + b; B is W^T padded to a multiple of 4 columns
function linearLayer(op, floats, heap) {
  const nIn = op.in, nOut = op.out, nOutP = ceil4(nOut);
  const w = heap.alloc(nIn * nOutP), bias = heap.alloc(nOutP);
  const f = heap.f32;
  for (let o = 0; o < nOut; o++) {
    for (let i = 0; i < nIn; i++) f[w + i * nOutP + o] = floats[op.weight + o * nIn + i];
    f[bias + o] = floats[op.bias + o];
  }
  return {
    outShape: [nOut],
    sizes: [nOutP],
    run(heap, x, [out], batch) {
      const f = heap.f32;
      for (let n = 0; n < batch; n++) f.copyWithin(out + n * nOutP, bias, bias + nOutP);
      heap.gemm(x, w, out, batch, nIn, nOutP);
      if (nOutP !== nOut) for (let n = 1; n < batch; n++) f.copyWithin(out + n * nOut, out + n * nOutP, out + n * nOutP + nOut);
      return out;
    },
  };
}

// conv2d as im2col then gemm: cols (B*OH*OW, IC*k*k) . W' (IC*k*k, OC) where W'[(ic, ky, kx)][oc] = W[oc][ic][ky][kx]
function conv2dLayer(op, floats, heap) {
  const { in_ch: IC, out_ch: OC, kernel: k, stride: s, padding: p } = op;
  const [H, W] = op.in_hw, [OH, OW] = op.out_hw, KK = IC * k * k, OCP = ceil4(OC), P = OH * OW;
  const w = heap.alloc(KK * OCP), f = heap.f32;
  for (let oc = 0; oc < OC; oc++) for (let j = 0; j < KK; j++) f[w + j * OCP + oc] = floats[op.weight + oc * KK + j];
  const bias = floats.slice(op.bias, op.bias + OC);
  return {
    outShape: [OC, OH, OW],
    sizes: [P * KK, P * OCP, OC * P], // per sample: cols, gemm output, result
    run(heap, x, [cols, prod, out], batch) {
      const f = heap.f32;
      for (let n = 0; n < batch; n++) {
        for (let oy = 0; oy < OH; oy++) for (let ox = 0; ox < OW; ox++) {
          const row = cols + ((n * OH + oy) * OW + ox) * KK;
          for (let ic = 0; ic < IC; ic++) for (let ky = 0; ky < k; ky++) {
            const iy = oy * s - p + ky;
            for (let kx = 0; kx < k; kx++) {
              const ix = ox * s - p + kx;
              const inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
              f[row + (ic * k + ky) * k + kx] = inside ? f[x + ((n * IC + ic) * H + iy) * W + ix] : 0;
            }
          }
        }
      }
      f.fill(0, prod, prod + batch * P * OCP);
      heap.gemm(cols, w, prod, batch * P, KK, OCP);
      for (let n = 0; n < batch; n++) for (let q = 0; q < P; q++) for (let oc = 0; oc < OC; oc++) {
        f[out + (n * OC + oc) * P + q] = f[prod + (n * P + q) * OCP + oc] + bias[oc];
      }
      return out;
    },
  };
}

// conv_transpose2d as gemm then col2im: x^T (B*H*W, IC) . W (IC, OC*k*k) gives every input pixel's contribution to
// its k x k output neighbourhood, which is then added into place (torch's weight (IC, OC, k, k) is already W)
function convTranspose2dLayer(op, floats, heap) {
  const { in_ch: IC, out_ch: OC, kernel: k, stride: s, padding: p } = op;
  const [H, W] = op.in_hw, [OH, OW] = op.out_hw, NC = OC * k * k, NCP = ceil4(NC), Q = H * W, P = OH * OW;
  const w = heap.alloc(IC * NCP), f = heap.f32;
  for (let ic = 0; ic < IC; ic++) for (let j = 0; j < NC; j++) f[w + ic * NCP + j] = floats[op.weight + ic * NC + j];
  const bias = floats.slice(op.bias, op.bias + OC);
  return {
    outShape: [OC, OH, OW],
    sizes: [Q * IC, Q * NCP, OC * P], // per sample: x^T, gemm output, result
    run(heap, x, [xt, prod, out], batch) {
      const f = heap.f32;
      for (let n = 0; n < batch; n++) for (let ic = 0; ic < IC; ic++) for (let q = 0; q < Q; q++) {
        f[xt + (n * Q + q) * IC + ic] = f[x + (n * IC + ic) * Q + q];
      }
      f.fill(0, prod, prod + batch * Q * NCP);
      heap.gemm(xt, w, prod, batch * Q, IC, NCP);
      for (let n = 0; n < batch; n++) {
        for (let oc = 0; oc < OC; oc++) f.fill(bias[oc], out + (n * OC + oc) * P, out + (n * OC + oc + 1) * P);
        for (let iy = 0; iy < H; iy++) for (let ix = 0; ix < W; ix++) {
          const row = prod + (n * Q + iy * W + ix) * NCP;
          for (let oc = 0; oc < OC; oc++) for (let ky = 0; ky < k; ky++) {
            const oy = iy * s - p + ky;
            if (oy < 0 || oy >= OH) continue;
            const dst = out + ((n * OC + oc) * OH + oy) * OW, src = row + (oc * k + ky) * k;
            for (let kx = 0; kx < k; kx++) {
              const ox = ix * s - p + kx;
              if (ox >= 0 && ox < OW) f[dst + ox] += f[src + kx];
            }
          }
        }
      }
      return out;
    },
  };
}

function reluLayer(shape) {
  const size = product(shape);
  return {
    outShape: shape,
    sizes: [],
    run(heap, x, buffers, batch) {
      const f = heap.f32;
      for (let i = x, end = x + batch * size; i < end; i++) if (f[i] < 0) f[i] = 0;
      return x;
    },
  };
}

// elementwise activations in place (vae_core.export.run_program's leaky_relu, sigmoid, tanh)
const ELEMENTWISE = {
  leaky_relu: (op) => { const slope = Math.fround(op.slope); return (v) => (v >= 0 ? v : slope * v); },
  sigmoid: () => (v) => 1 / (1 + Math.exp(-v)),
  tanh: () => Math.tanh,
};

function elementwiseLayer(op, shape) {
  const size = product(shape), fn = ELEMENTWISE[op.op](op);
  return {
    outShape: shape,
    sizes: [],
    run(heap, x, buffers, batch) {
      const f = heap.f32;
      for (let i = x, end = x + batch * size; i < end; i++) f[i] = fn(f[i]);
      return x;
    },
  };
}

// pad / crop: a window copy per channel. pad puts the (H, W) input at (top, left) of a zeroed (OH, OW) output;
// crop takes the (OH, OW) output from (top, left) of the (H, W) input
function windowLayer(op) {
  const { channels: C, top, left } = op, [H, W] = op.in_hw, [OH, OW] = op.out_hw, pad = op.op === "pad";
  const [rows, cols] = pad ? [H, W] : [OH, OW]; // the copied window
  return {
    outShape: [C, OH, OW],
    sizes: [C * OH * OW],
    run(heap, x, [out], batch) {
      const f = heap.f32;
      if (pad) f.fill(0, out, out + batch * C * OH * OW);
      for (let n = 0; n < batch; n++) for (let c = 0; c < C; c++) for (let y = 0; y < rows; y++) {
        const src = x + ((n * C + c) * H + y + (pad ? 0 : top)) * W + (pad ? 0 : left);
        const dst = out + ((n * C + c) * OH + y + (pad ? top : 0)) * OW + (pad ? left : 0);
        f.copyWithin(dst, src, src + cols);
      }
      return out;
    },
  };
}

// bias: a value added per (C, H, W) element of each sample (a conv decoder's last op), in place
function biasLayer(op, floats) {
  const size = product(op.shape), bias = floats.subarray(op.bias, op.bias + size);
  return {
    outShape: op.shape,
    sizes: [],
    run(heap, x, _buffers, batch) {
      const f = heap.f32;
      for (let n = 0; n < batch; n++) for (let i = 0, at = x + n * size; i < size; i++) f[at + i] += bias[i];
      return x;
    },
  };
}

function reshapeLayer(shape, to) {
  if (product(shape) !== product(to)) throw new Error(`cannot reshape ${shape} to ${to}`);
  return { outShape: to, sizes: [], run: (heap, x) => x };
}

const LAYERS = {
  linear: linearLayer, conv2d: conv2dLayer, conv_transpose2d: convTranspose2dLayer, pad: windowLayer, crop: windowLayer,
  bias: biasLayer,
};

// A program compiled onto a heap: run(batch) reads `batch` samples at `input` and returns the output's offset.
class Network {
  constructor(ops, floats, inShape, heap) {
    this.heap = heap;
    this.inShape = inShape;
    let shape = inShape;
    this.layers = ops.map((op) => {
      let layer;
      if (op.op === "relu") layer = reluLayer(shape);
      else if (Object.hasOwn(ELEMENTWISE, op.op)) layer = elementwiseLayer(op, shape);
      else if (op.op === "reshape") layer = reshapeLayer(shape, op.shape);
      else if (LAYERS[op.op]) layer = LAYERS[op.op](op, floats, heap);
      else throw new Error(`unknown op ${op.op}`);
      shape = layer.outShape;
      return layer;
    });
    this.outShape = shape;
    this.inSize = product(inShape);
    this.outSize = product(shape);
    this.capacity = 0;
  }

  // room for `batch` samples in every buffer (doubling, so a growing batch allocates rarely)
  reserve(batch) {
    if (batch <= this.capacity) return;
    const capacity = Math.max(batch, 2 * this.capacity, 1);
    this.input = this.heap.alloc(capacity * this.inSize);
    this.buffers = this.layers.map((layer) => layer.sizes.map((size) => this.heap.alloc(capacity * size)));
    this.capacity = capacity;
  }

  // x: Float32Array of batch * inSize values -> the output's offset in heap.f32 (valid until the next run)
  run(x, batch) {
    this.reserve(batch);
    this.heap.f32.set(x.subarray(0, batch * this.inSize), this.input);
    let at = this.input;
    this.layers.forEach((layer, i) => { at = layer.run(this.heap, at, this.buffers[i], batch); });
    return at;
  }
}

// The decoder's output op -> E[x|z] per pixel (the spec's "output": vae_core/likelihoods.py, Likelihood.output_op)
const OUTPUTS = {
  sigmoid: (v) => 1 / (1 + Math.exp(-v)), // Bernoulli logits -> probabilities
  clamp: (v) => Math.min(1, Math.max(0, v)), // Gaussian means kept to the image range
};

// One model in the browser: decode z -> E[x|z] (vae_core.model.VAE.decode_mean) and encode x -> (mu, logvar).
// floats: the whole blob, or its first spec.decoder_floats (the decoder's) with encoderPart() giving the rest,
// {offset, floats}, once it has come (ui/explore/data.py sends it only with the drawing pad); null until then.
class VaeModel {
  constructor(spec, floats, kernel = "auto", encoderPart = () => null) {
    this.spec = spec;
    this.heap = new Heap(kernel);
    this.kernel = this.heap.kernel;
    this.latentDim = spec.latent_dim;
    this.shape = spec.shape; // (C, H, W)
    this.imageSize = product(spec.shape);
    if (!Object.hasOwn(OUTPUTS, spec.output)) throw new Error(`unknown output op ${spec.output}`);
    this.output = OUTPUTS[spec.output];
    this.decoder = new Network(spec.decoder, floats, [spec.latent_dim], this.heap);
    this.encoderPart = encoderPart;
    if (floats.length >= spec.n_floats) this.compileEncoder(floats);
  }

  // the encoder's programs onto the heap, from the whole blob or from the part sent apart (at its offset)
  compileEncoder(floats) {
    if (!floats) {
      const part = this.encoderPart();
      if (!part) throw new Error("this model's encoder has not been sent to the browser (it comes with the drawing pad)");
      floats = new Float32Array(this.spec.n_floats);
      floats.set(part.floats, part.offset);
    }
    const enc = this.spec.encoder;
    this.encoderBody = new Network(enc.body, floats, this.spec.shape, this.heap);
    this.encoderMu = new Network(enc.mu, floats, this.encoderBody.outShape, this.heap);
    this.encoderLogvar = new Network(enc.logvar, floats, this.encoderBody.outShape, this.heap);
  }

  // z: Float32Array (n * latentDim) -> images (n * C * H * W) in [0, 1]: the output op of the decoder's last layer
  decode(z, n = 1) {
    const at = this.decoder.run(z, n), f = this.heap.f32, out = new Float32Array(n * this.imageSize);
    const output = this.output;
    for (let i = 0; i < out.length; i++) out[i] = output(f[at + i]);
    return out;
  }

  // x: Float32Array (n * C * H * W) -> {mu, logvar}, each (n * latentDim)
  encode(x, n = 1) {
    if (!this.encoderBody) this.compileEncoder();
    const h = this.encoderBody.run(x, n);
    const features = this.heap.f32.slice(h, h + n * this.encoderBody.outSize);
    const read = (net) => { const at = net.run(features, n); return this.heap.f32.slice(at, at + n * this.latentDim); };
    return { mu: read(this.encoderMu), logvar: read(this.encoderLogvar) };
  }
}
