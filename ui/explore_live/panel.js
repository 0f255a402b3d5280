// The live panel: one slider per latent dimension, the image decoded from z in the browser on every movement
// (drawn once per display frame), and a strip of traversals of the most informative dimensions around z, decoded
// in the browser too, a few rows per frame so the main image never waits for them. A drag's final z goes to Python
// on release. Reference maths: vae_core.latent.decode (image) and traversal_grid (strip).

const STRIP_BUDGET_MS = 8; // traversal decoding per frame, after the main image

class Panel {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    this.image = element("canvas", "vx-canvas");
    this.note = element("div", "vx-note");
    this.sliders = element("div", "vx-sliders");
    this.strip = element("canvas", "vx-strip");
    this.stripLabels = element("div", "vx-strip-labels");
    const picture = element("div", "vx-image");
    picture.append(this.image, this.note);
    const top = element("div", "vx-panel-top");
    top.append(picture, this.sliders);
    const strip = element("div", "vx-strip-box");
    strip.append(this.stripLabels, this.strip);
    root.append(top, strip);
    this.layout = null;
    this.dirty = false;
    this.pending = false;
    this.inputAt = null; // timestamp of the oldest input event not drawn yet
    this.lastFrameAt = null;
    this.stripNext = 0;
    this.stripLeft = 0;
    this.unlisten = explorer.listen(this);
    root.addEventListener("input", (event) => this.onInput(event));
    root.addEventListener("change", (event) => {
      if (event.target.closest("input.vx-slider")) this.report("slider");
    });
  }

  update(view, model, setTrigger) {
    this.setTrigger = setTrigger;
    this.model = model;
    const signature = JSON.stringify([view.assets.model, view.dims, view.scale, view.traverse]);
    if (signature !== this.layout) {
      this.layout = signature;
      this.view = view;
      const [, h, w] = model.shape;
      Object.assign(this.image, { width: w * view.scale, height: h * view.scale });
      this.buildSliders(view.dims);
      this.buildStrip(view.traverse);
      this.note.textContent = `decoded in your browser (${model.kernel})`;
    }
    this.showZ();
    this.requestFrame();
  }

  buildSliders(dims) {
    this.sliders.replaceChildren(...dims.map((d) => {
      const row = element("label", d.collapsed ? "vx-row vx-collapsed" : "vx-row");
      row.title = `z${d.index}: mean KL ${d.kl.toFixed(3)} nats${d.collapsed ? " (collapsed: carries almost no information)" : ""}`;
      const input = element("input", "vx-slider");
      Object.assign(input, { type: "range", min: d.lo, max: d.hi, step: "any" });
      input.dataset.dim = String(d.index);
      input.setAttribute("aria-label", `z${d.index}`);
      row.append(element("span", "vx-name", d.collapsed ? `z${d.index} ∅` : `z${d.index}`), input,
        element("span", "vx-value"));
      return row;
    }));
  }

  buildStrip(traverse) {
    const [, h, w] = this.model.shape, room = (this.root.clientWidth || 400) - 40; // labels take the rest
    const tile = Math.max(1, Math.min(Math.round(traverse.tile_px / h), Math.floor(room / traverse.steps / w)));
    this.stripTile = tile;
    Object.assign(this.strip, { width: traverse.steps * (w * tile + 2), height: traverse.dims.length * (h * tile + 2) });
    this.stripLabels.replaceChildren(...traverse.dims.map((d) => {
      const label = element("div", "vx-strip-label", `z${d.index}`);
      label.style.height = `${h * tile + 2}px`;
      return label;
    }));
    this.strip.hidden = traverse.dims.length === 0;
  }

  showZ() {
    const z = this.explorer.z;
    for (const input of this.sliders.querySelectorAll("input.vx-slider")) {
      const v = z[Number(input.dataset.dim)] ?? 0;
      if (document.activeElement !== input || Number(input.value) !== v) input.value = String(v);
      input.parentElement.querySelector(".vx-value").textContent = v.toFixed(2);
    }
  }

  onInput(event) {
    const slider = event.target.closest("input.vx-slider");
    if (!slider) return;
    const z = Float32Array.from(this.explorer.z);
    z[Number(slider.dataset.dim)] = Number(slider.value);
    this.explorer.setZ(z, "panel", event.timeStamp);
  }

  // the explorer's z moved (here, on the map, on the pad, or from Python)
  onZ(z, source, eventAt) {
    this.showZ();
    if (eventAt !== null && this.inputAt === null) this.inputAt = eventAt;
    this.requestFrame();
  }

  requestFrame() {
    this.dirty = true;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame((now) => this.frame(now));
  }

  frame(now) {
    this.pending = false;
    if (!this.model || !this.root.isConnected) return;
    if (this.dirty) {
      this.dirty = false;
      const start = performance.now();
      drawImage(this.image, this.model.decode(this.explorer.z, 1), this.model.shape);
      const t = this.explorer.timing;
      t.decode.add(performance.now() - start);
      if (this.lastFrameAt !== null && now - this.lastFrameAt < 250) t.interval.add(now - this.lastFrameAt);
      this.lastFrameAt = now;
      if (this.inputAt !== null) {
        const inputAt = this.inputAt;
        this.inputAt = null;
        requestAnimationFrame(() => t.paint.add(performance.now() - inputAt)); // the frame that shows it
      }
      this.stripLeft = this.stripTiles(); // every tile once more, from where the strip is now
      this.root.dataset.frames = String(t.decode.count);
      this.root.dataset.msPerFrame = t.decode.quantile(0.5).toFixed(3);
    }
    if (this.stripLeft > 0) this.stripFrame();
    if (this.stripLeft > 0) this.schedule();
  }

  stripTiles() {
    const traverse = this.view?.traverse;
    return traverse ? traverse.dims.length * traverse.steps : 0;
  }

  // Decode traversal tiles for this frame's budget, in batches, at the current z; the others follow next frame.
  // Row r, column s: z with dimension d_r at linspace(lo, hi, steps)[s] (vae_core.latent.traversal_grid).
  stripFrame() {
    const traverse = this.view.traverse, steps = traverse.steps, total = this.stripTiles();
    const [, h, w] = this.model.shape, tile = this.stripTile, size = this.model.imageSize, z = this.explorer.z;
    const perImage = Math.max(0.02, this.explorer.timing.decode.quantile(0.5) || 1);
    const ctx = this.strip.getContext("2d");
    const start = performance.now();
    do {
      const count = Math.min(this.stripLeft, Math.max(1, Math.floor(STRIP_BUDGET_MS / perImage)));
      const zs = new Float32Array(count * z.length), tiles = [];
      for (let i = 0; i < count; i++) {
        const t = (this.stripNext + i) % total, r = Math.floor(t / steps), s = t % steps, d = traverse.dims[r];
        zs.set(z, i * z.length);
        zs[i * z.length + d.index] = d.lo + ((d.hi - d.lo) * s) / (steps - 1);
        tiles.push([r, s]);
      }
      const images = this.model.decode(zs, count);
      tiles.forEach(([r, s], i) => drawImage(this.strip, images, this.model.shape, i * size, tile,
        s * (w * tile + 2), r * (h * tile + 2)));
      this.stripNext = (this.stripNext + count) % total;
      this.stripLeft -= count;
    } while (this.stripLeft > 0 && performance.now() - start < STRIP_BUDGET_MS);
    traverse.dims.forEach((d, r) => { // where z sits on each row
      const y = r * (h * tile + 2) + h * tile, at = Math.min(1, Math.max(0, (z[d.index] - d.lo) / (d.hi - d.lo)));
      ctx.clearRect(0, y, this.strip.width, 2);
      ctx.fillStyle = "#FF4B4B";
      ctx.fillRect(Math.round(at * (this.strip.width - 4)), y, 4, 2);
    });
    if (this.stripLeft <= 0) this.root.dataset.stripDone = String(this.explorer.timing.decode.count);
  }

  report(reason) {
    const t = this.explorer.timing.decode.summary();
    this.setTrigger?.("z", { z: Array.from(this.explorer.z), reason, ms_per_frame: t.median, frames: t.count });
  }
}
