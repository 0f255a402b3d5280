// Live decoder: one slider per latent dimension; every input event decodes z -> image here in the browser with the
// MLP decoder's weights and redraws the canvas at display frame rate (requestAnimationFrame). The weights arrive once
// per model and stay in `decoders` for the life of this tab; the final z goes back to Python on release ("change").
// Timing for tests and benchmarks: root[data-frames], root[data-ms-per-frame] and window.__vaeLiveDecoder.

const decoders = new Map(); // weights hash -> decoder
const RING = 240; // frame times kept for the statistics

function floats(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer); // little-endian float32, as exported
}

function makeDecoder(weights) {
  const layers = weights.layers.map((l) => ({
    nIn: l.in, nOut: l.out, relu: l.relu, weight: floats(l.weight), bias: floats(l.bias), out: new Float32Array(l.out),
  }));
  return { layers, shape: weights.shape, output: weights.output, hash: weights.hash };
}

// The maths of vae_core.latent.reference_decode: h <- W h + b per layer (W is (out, in) row-major), ReLU between.
function decode(decoder, z) {
  let h = z;
  for (const { nIn, nOut, relu, weight, bias, out } of decoder.layers) {
    for (let o = 0; o < nOut; o++) {
      let s = bias[o];
      const row = o * nIn;
      for (let i = 0; i < nIn; i++) s += weight[row + i] * h[i];
      out[o] = relu && s < 0 ? 0 : s;
    }
    h = out;
  }
  return h; // logits (bernoulli) or means (gaussian), channel-major (C, H, W)
}

function draw(view, params) {
  const [c, height, width] = view.decoder.shape;
  const plane = height * width;
  const rgba = view.imageData.data;
  const sigmoid = view.decoder.output === "sigmoid";
  const value = (v) => Math.round(255 * (sigmoid ? 1 / (1 + Math.exp(-v)) : Math.min(1, Math.max(0, v))));
  for (let p = 0; p < plane; p++) {
    const g = value(params[p]);
    rgba[4 * p] = g;
    rgba[4 * p + 1] = c >= 3 ? value(params[plane + p]) : g;
    rgba[4 * p + 2] = c >= 3 ? value(params[2 * plane + p]) : g;
    rgba[4 * p + 3] = 255;
  }
  view.small.getContext("2d").putImageData(view.imageData, 0, 0);
  const ctx = view.canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false; // nearest-neighbour upscaling, like ui/images.py
  ctx.drawImage(view.small, 0, 0, view.canvas.width, view.canvas.height);
}

function quantile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function publish(view) {
  const t = view.timing;
  t.medianMs = quantile(t.times, 0.5);
  t.p95Ms = quantile(t.times, 0.95);
  t.frameIntervalMs = quantile(t.intervals, 0.5);
  view.root.dataset.frames = String(t.frames);
  view.root.dataset.msPerFrame = t.medianMs === null ? "" : t.medianMs.toFixed(3);
  window.__vaeLiveDecoder = t;
}

function frame(view, now) {
  view.pending = false;
  if (!view.dirty || !view.decoder) return;
  view.dirty = false;
  const start = performance.now();
  draw(view, decode(view.decoder, view.z));
  const t = view.timing;
  t.lastMs = performance.now() - start; // decode + draw of one frame
  t.frames += 1;
  t.times.push(t.lastMs);
  if (view.lastFrameAt !== null && now - view.lastFrameAt < 250) t.intervals.push(now - view.lastFrameAt);
  view.lastFrameAt = now;
  if (t.times.length > RING) t.times.shift();
  if (t.intervals.length > RING) t.intervals.shift();
  publish(view);
}

function requestFrame(view) {
  view.dirty = true;
  if (!view.pending) {
    view.pending = true;
    requestAnimationFrame((now) => frame(view, now));
  }
}

function send(view, reason) {
  const t = view.timing;
  view.setStateValue("report", {
    reason, hash: reason === "need-weights" ? null : view.decoder.hash, z: Array.from(view.z),
    frames: t.frames, ms_per_frame: t.medianMs, p95_ms: t.p95Ms, frame_interval_ms: t.frameIntervalMs,
  });
}

function createView(root) {
  const view = {
    root, canvas: root.querySelector("canvas.vld-canvas"), sliders: root.querySelector(".vld-sliders"),
    small: document.createElement("canvas"), z: new Float32Array(0), decoder: null, layout: null,
    appliedVersion: null, requested: null, dirty: false, pending: false, lastFrameAt: null, setStateValue: null,
    timing: { frames: 0, lastMs: null, medianMs: null, p95Ms: null, frameIntervalMs: null, times: [], intervals: [] },
  };
  view.timing.reset = () => Object.assign(view.timing, { frames: 0, times: [], intervals: [] });
  root.addEventListener("input", (event) => {
    const slider = event.target.closest("input.vld-slider");
    if (!slider) return;
    view.z[Number(slider.dataset.dim)] = Number(slider.value);
    slider.parentElement.querySelector(".vld-value").textContent = Number(slider.value).toFixed(2);
    requestFrame(view);
  });
  root.addEventListener("change", (event) => {
    if (event.target.closest("input.vld-slider") && view.decoder) send(view, "release");
  });
  return view;
}

function buildSliders(view, dims) {
  view.sliders.replaceChildren(...dims.map((d) => {
    const row = document.createElement("label");
    row.className = d.collapsed ? "vld-row vld-collapsed" : "vld-row";
    row.title = `z${d.index}: mean KL ${d.kl.toFixed(3)} nats${d.collapsed ? " (collapsed: carries almost no information)" : ""}`;
    const name = document.createElement("span");
    name.className = "vld-name";
    name.textContent = d.collapsed ? `z${d.index} ∅` : `z${d.index}`;
    const input = document.createElement("input");
    Object.assign(input, { type: "range", className: "vld-slider", min: d.lo, max: d.hi, step: "any" });
    input.dataset.dim = String(d.index);
    input.setAttribute("aria-label", `z${d.index}`);
    const value = document.createElement("span");
    value.className = "vld-value";
    row.append(name, input, value);
    return row;
  }));
}

function showZ(view) {
  for (const input of view.sliders.querySelectorAll("input.vld-slider")) {
    const v = view.z[Number(input.dataset.dim)];
    input.value = String(v);
    input.parentElement.querySelector(".vld-value").textContent = v.toFixed(2);
  }
}

function applyLayout(view, data) {
  const signature = JSON.stringify([data.hash, data.dims, data.scale]);
  if (signature === view.layout) return;
  view.layout = signature;
  const [, height, width] = view.decoder.shape;
  Object.assign(view.small, { width, height });
  Object.assign(view.canvas, { width: width * data.scale, height: height * data.scale });
  view.imageData = new ImageData(width, height);
  buildSliders(view, data.dims);
  view.appliedVersion = null; // a new layout takes Python's z
}

export default function liveDecoder({ data, parentElement, setStateValue }) {
  const root = parentElement.querySelector(".vld-root");
  if (!root || !data) return;
  const view = root.__vld || (root.__vld = createView(root));
  view.setStateValue = setStateValue;
  if (data.weights) decoders.set(data.weights.hash, makeDecoder(data.weights));
  view.decoder = decoders.get(data.hash) || null;
  if (!view.decoder) { // this tab lost the weights: ask Python to send them again (once per model)
    root.dataset.state = "waiting";
    if (view.requested !== data.hash) {
      view.requested = data.hash;
      view.setStateValue("report", { reason: "need-weights", hash: null, z: data.z });
    }
    return;
  }
  applyLayout(view, data);
  if (view.appliedVersion !== data.z_version || view.z.length !== data.z.length) {
    view.z = Float32Array.from(data.z);
    view.appliedVersion = data.z_version;
    showZ(view);
  }
  root.dataset.state = "ready";
  requestFrame(view);
  if (data.weights) send(view, "loaded"); // tell Python the weights arrived so later reruns leave them out
}
