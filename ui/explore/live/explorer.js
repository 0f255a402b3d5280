// What the Explore page's browser parts share in this tab: the assets Python sent (models, maps, colourings), each
// once per content hash, and one Explorer per page holding the current z that the panel, the map and the pad show.
// Python's side of the protocol: ui/explore/live/__init__.py (bundle, mount, parse_bundle).

const ASSETS = new Map(); // hash -> {hash, kind, meta, arrays, bytes, used}
const ASSET_BUDGET = 768 * 2 ** 20; // bytes kept; least recently used assets beyond it are dropped (and re-asked for)
const NEED_AFTER_MS = 1500; // an asset another mount of this run may still be bringing is asked for after this,
const NEED_AGAIN_MAX_MS = 12000; // and again, the wait doubling up to this, until it comes (see askForMissing)
const waiting = new Map(); // hash -> callbacks to run when it arrives
const asking = { timer: null, need: null }; // the next ask for the missing assets, and the newest mount's way to ask
const DTYPES = { f4: Float32Array, i4: Int32Array, i2: Int16Array, u2: Uint16Array, u1: Uint8Array };

// A bundle: "VAE1", the header's length (uint32, little-endian), the header (JSON: {view, assets}), the blobs.
function parseBundle(bytes) {
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic !== "VAE1") throw new Error(`not an Explore bundle (${magic})`);
  const length = new DataView(bytes.buffer, bytes.byteOffset + 4, 4).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  const base = 8 + length;
  for (const [hash, entry] of Object.entries(header.assets || {})) {
    const buffer = bytes.slice(base + entry.offset, base + entry.offset + entry.length).buffer; // aligned copy
    const arrays = {};
    for (const [name, [dtype, offset, count]] of Object.entries(entry.arrays || {})) {
      arrays[name] = new DTYPES[dtype](buffer, offset, count);
    }
    storeAsset({ hash, kind: entry.kind, meta: entry.meta, arrays, bytes: entry.length, used: performance.now() });
  }
  return header.view;
}

function storeAsset(entry) {
  ASSETS.set(entry.hash, entry);
  let total = 0;
  for (const a of ASSETS.values()) total += a.bytes;
  const oldest = [...ASSETS.values()].sort((a, b) => a.used - b.used);
  while (total > ASSET_BUDGET && oldest.length > 1) {
    const a = oldest.shift();
    if (a.hash === entry.hash) continue;
    ASSETS.delete(a.hash);
    total -= a.bytes;
  }
  for (const callback of waiting.get(entry.hash) || []) callback(entry);
  waiting.delete(entry.hash);
}

// The asset now, or null; when missing, onArrive(asset) runs once it comes, and need(hashes) asks Python for it if it
// has not come soon (another mount of the same run may be carrying it).
function assetFor(hash, onArrive, need) {
  const entry = ASSETS.get(hash);
  if (entry) {
    entry.used = performance.now();
    return entry;
  }
  if (!waiting.has(hash)) waiting.set(hash, []);
  waiting.get(hash).push(onArrive);
  askForMissing(need);
  return null;
}

// Ask for every asset still missing in one event, and ask again (the wait doubling) until none is: a request can be
// lost. Streamlit keeps only the newest event of a component among those that wait for one rerun, so one event per
// asset lost all but one of them when several went missing at once (a bundle the browser never drew, superseded by
// the next run's), and a part waited for the rest for ever — a map that never drew its star.
function askForMissing(need, after = NEED_AFTER_MS) {
  asking.need = need;
  if (asking.timer !== null) return;
  asking.timer = setTimeout(() => {
    asking.timer = null;
    if (!waiting.size) return;
    asking.need([...waiting.keys()]);
    askForMissing(asking.need, Math.min(2 * after, NEED_AGAIN_MAX_MS));
  }, after);
}

// The model behind a model asset, compiled on first use (its weights copied into the runtime's heap); its encoder
// once an encoder asset has been attached to the entry (main.js: the pad's mount brings it).
function modelOf(entry, kernel = "auto") {
  const key = `model:${kernel}`;
  if (!entry[key]) {
    const encoderPart = () => (entry.encoder ? { offset: entry.encoder.meta.offset, floats: entry.encoder.arrays.floats } : null);
    entry[key] = new VaeModel(entry.meta, entry.arrays.floats, kernel, encoderPart);
  }
  return entry[key];
}

// Timing of one kind of frame, kept for the page's captions, the tests and the benchmarks (window.__vaeExplore).
class Timing {
  constructor(size = 240) {
    this.size = size;
    this.reset();
  }

  reset() {
    this.count = 0;
    this.values = [];
  }

  add(ms) {
    this.count += 1;
    this.last = ms;
    this.values.push(ms);
    if (this.values.length > this.size) this.values.shift();
  }

  quantile(q) {
    if (!this.values.length) return null;
    const sorted = [...this.values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  summary() {
    return { count: this.count, last: this.last ?? null, median: this.quantile(0.5), p95: this.quantile(0.95) };
  }
}

// One page's shared z. Python moves it by sending a higher z_version; the parts move it with setZ and tell Python
// when a gesture ends (their own "z" event), so a rerun that carries the same version leaves the browser's z alone.
class Explorer {
  constructor() {
    this.z = new Float32Array(0);
    this.version = null;
    this.listeners = new Set();
    this.padPoint = null; // the drawing pad's code, shown on the map
    this.parts = {}; // role -> the part last mounted
    this.tasks = new Map(); // what the next frame draws: task -> priority
    this.framePending = false;
    this.model = null;
    this.timing = {
      decode: new Timing(), paint: new Timing(), interval: new Timing(), hover: new Timing(), mapFrame: new Timing(),
      pad: new Timing(),
    };
  }

  listen(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  fromPython(z, version) {
    if (version === this.version && z.length === this.z.length) return;
    this.version = version;
    this.setZ(z, "python");
  }

  setZ(z, source, eventAt = null) {
    this.z = Float32Array.from(z);
    this.notify((listener) => listener.onZ?.(this.z, source, eventAt));
  }

  // One requestAnimationFrame for all the parts of a page: each frame runs the tasks that asked for it in order of
  // priority (the panel's image first, 0; then grids, 1, in what is left of the frame's budget), with the frame's
  // start time. A task's frame(now) returns true to run again next frame.
  requestFrame(task, priority = 0) {
    this.tasks.set(task, Math.min(priority, this.tasks.get(task) ?? priority));
    if (this.framePending) return;
    this.framePending = true;
    requestAnimationFrame((now) => this.runFrame(now));
  }

  runFrame(now) {
    this.framePending = false;
    const tasks = [...this.tasks].sort((a, b) => a[1] - b[1]);
    this.tasks.clear();
    for (const [task, priority] of tasks) {
      if (task.frame(now) === true) this.requestFrame(task, priority);
    }
  }

  setPadPoint(mu) {
    this.padPoint = mu ? Float32Array.from(mu) : null;
    this.notify((listener) => listener.onPadPoint?.(this.padPoint));
  }

  notify(call) {
    for (const listener of this.listeners) {
      if (listener.root && !listener.root.isConnected) this.listeners.delete(listener); // its page was left
      else call(listener);
    }
  }
}

const EXPLORERS = new Map();
function explorerFor(group) {
  if (!EXPLORERS.has(group)) EXPLORERS.set(group, new Explorer());
  return EXPLORERS.get(group);
}

// Give a canvas this pixel size; only when it differs, as setting either clears the canvas (an update from Python
// that resized an unchanged canvas would leave it blank until the next frame: a flicker).
function sizeCanvas(canvas, width, height) {
  if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
}

// Draw one (C, H, W) image in [0, 1] into a canvas at an integer scale, without smoothing (as ui/images.py).
function drawImage(canvas, pixels, shape, offset = 0, scale = null, dx = 0, dy = 0) {
  const [c, h, w] = shape;
  const plane = h * w;
  const small = drawImage.small || (drawImage.small = document.createElement("canvas"));
  sizeCanvas(small, w, h);
  const ctx = small.getContext("2d");
  const data = ctx.createImageData(w, h);
  const rgba = data.data;
  const bytes = pixels instanceof Uint8Array;
  const value = (v) => (bytes ? v : Math.round(255 * Math.min(1, Math.max(0, v))));
  for (let p = 0; p < plane; p++) {
    const g = value(pixels[offset + p]);
    rgba[4 * p] = g;
    rgba[4 * p + 1] = c >= 3 ? value(pixels[offset + plane + p]) : g;
    rgba[4 * p + 2] = c >= 3 ? value(pixels[offset + 2 * plane + p]) : g;
    rgba[4 * p + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  const target = canvas.getContext("2d");
  target.imageSmoothingEnabled = false;
  const s = scale || canvas.width / w;
  target.drawImage(small, dx, dy, w * s, h * s);
}

// An element with a class and (optionally) text: user strings only ever reach the page through textContent.
function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}
