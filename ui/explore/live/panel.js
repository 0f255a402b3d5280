// The live panel: one slider per latent dimension, the image decoded from z in the browser on every movement
// (drawn once per display frame, before anything else), and a strip of traversals of the most informative
// dimensions around z (grid.js), in what is left of each frame. A drag's final z goes to Python on release.
// Reference maths: vae_core.latent.decode (image) and traversal_grid (strip).

class Panel {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    this.image = element("canvas", "vx-canvas");
    this.note = element("div", "vx-note");
    this.sliders = element("div", "vx-sliders");
    const stripCanvas = element("canvas", "vx-strip"), stripLabels = element("div", "vx-strip-labels");
    this.strip = new ZGrid(explorer, stripCanvas, stripLabels);
    const picture = element("div", "vx-image");
    picture.append(this.image, this.note);
    const top = element("div", "vx-panel-top");
    top.append(picture, this.sliders);
    const strip = element("div", "vx-strip-box");
    strip.append(stripLabels, stripCanvas);
    root.append(top, strip);
    this.layout = null;
    this.dirty = false;
    this.inputAt = null; // timestamp of the oldest input event not drawn yet
    this.lastFrameAt = null;
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
      this.strip.configure(model, { kind: "traverse", dims: view.traverse.dims, steps: view.traverse.steps },
        view.traverse.tile_px, (this.root.clientWidth || 400) - 40);
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
    this.strip.follow();
  }

  requestFrame() {
    this.dirty = true;
    this.explorer.requestFrame(this, 0);
  }

  // the main image, first in its frame (explorer.js runFrame)
  frame(now) {
    if (!this.model || !this.root.isConnected || !this.dirty) return false;
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
    this.root.dataset.frames = String(t.decode.count);
    this.root.dataset.msPerFrame = t.decode.quantile(0.5).toFixed(3);
    return false;
  }

  report(reason) {
    const t = this.explorer.timing.decode.summary();
    this.setTrigger?.("z", { z: Array.from(this.explorer.z), reason, ms_per_frame: t.median, frames: t.count });
  }
}
