// The "attribute" part: a slider that moves the page's z along an attribute vector (the difference of two groups'
// mean codes, vae_core.attributes.attribute_vector) from the z it was at when the slider was picked up:
// z = base + alpha * direction. The image at z is decoded here on every movement (and the panel, the map's star and
// the grids follow, as for any move of z); the final z goes to Python on release. Moving z any other way starts a
// new base at alpha = 0.

class AttributePart {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    this.canvas = element("canvas", "vx-canvas");
    this.input = element("input", "vx-slider vx-attribute");
    Object.assign(this.input, { type: "range", step: "any" });
    this.input.setAttribute("aria-label", "alpha along the attribute vector");
    this.from = element("span", "vx-name");
    this.to = element("span", "vx-name");
    this.value = element("span", "vx-value");
    const row = element("label", "vx-row");
    row.append(this.from, this.input, this.to, this.value);
    const picture = element("div", "vx-image");
    picture.append(this.canvas, element("div", "vx-note", "z + α·v, decoded in your browser"));
    const top = element("div", "vx-panel-top");
    top.append(picture, row);
    root.append(top);
    this.base = null;
    this.alpha = 0;
    this.drawn = 0;
    explorer.listen(this);
    this.input.addEventListener("input", (event) => this.onInput(event));
    this.input.addEventListener("change", () => this.report());
  }

  // view.attribute: {direction: [D numbers], lo, hi, from, to}
  update(view, model, setTrigger) {
    this.setTrigger = setTrigger;
    this.model = model;
    const a = view.attribute, signature = JSON.stringify([view.assets.model, a, view.scale]);
    if (signature !== this.layout) {
      this.layout = signature;
      this.direction = Float32Array.from(a.direction);
      Object.assign(this.input, { min: a.lo, max: a.hi });
      this.from.textContent = a.from;
      this.to.textContent = a.to;
      const [, h, w] = model.shape;
      Object.assign(this.canvas, { width: w * view.scale, height: h * view.scale });
      this.rebase();
    }
    this.requestFrame();
  }

  rebase() {
    this.base = Float32Array.from(this.explorer.z);
    this.showAlpha(0);
  }

  showAlpha(alpha) {
    this.alpha = alpha;
    if (Number(this.input.value) !== alpha) this.input.value = String(alpha);
    this.value.textContent = `α = ${alpha.toFixed(2)}`;
    this.root.dataset.alpha = String(alpha);
  }

  onInput(event) {
    if (!this.base || this.base.length !== this.direction.length) this.rebase();
    const alpha = Number(this.input.value);
    this.showAlpha(alpha);
    this.explorer.setZ(this.base.map((v, i) => v + alpha * this.direction[i]), "attribute", event.timeStamp);
  }

  // the explorer's z moved: by this slider (keep the base), or elsewhere (a new base, alpha back to 0)
  onZ(z, source) {
    if (source !== "attribute") this.rebase();
    this.requestFrame();
  }

  requestFrame() {
    this.dirty = true;
    this.explorer.requestFrame(this, 0);
  }

  frame() {
    if (!this.model || !this.root.isConnected || !this.dirty) return false;
    this.dirty = false;
    drawImage(this.canvas, this.model.decode(this.explorer.z, 1), this.model.shape);
    this.drawn += 1;
    this.root.dataset.drawn = String(this.drawn);
    return false;
  }

  report() {
    this.setTrigger?.("z", { z: Array.from(this.explorer.z), reason: "attribute" });
  }
}
