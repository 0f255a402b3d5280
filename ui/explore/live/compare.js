// The "compare" part: the page's model and a second one with the same latent size decoding the same z side by side,
// in the browser, on every move of z (a slider, the map's star, the attribute slider, Python). Reference:
// vae_core.latent.decode with each model.

class ComparePart {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    this.canvases = [element("canvas", "vx-canvas"), element("canvas", "vx-canvas")];
    this.names = [element("div", "vx-note"), element("div", "vx-note")];
    const row = element("div", "vx-panel-top");
    this.canvases.forEach((canvas, i) => {
      const picture = element("div", "vx-image");
      picture.append(canvas, this.names[i]);
      row.append(picture);
    });
    root.append(row);
    this.drawn = 0;
    explorer.listen(this);
  }

  // view: {names: [this model's, the other's], scale}; assets.other: the second model
  update(view, model, setTrigger, assets) {
    this.models = [model, modelOf(assets.other)];
    this.models.forEach((m, i) => {
      const [, h, w] = m.shape;
      sizeCanvas(this.canvases[i], w * view.scale, h * view.scale);
      this.names[i].textContent = view.names[i];
    });
    this.requestFrame();
  }

  onZ() {
    this.requestFrame();
  }

  requestFrame() {
    this.dirty = true;
    this.explorer.requestFrame(this, 1);
  }

  frame() {
    if (!this.models || !this.root.isConnected || !this.dirty) return false;
    this.dirty = false;
    this.models.forEach((m, i) => drawImage(this.canvases[i], m.decode(this.explorer.z, 1), m.shape));
    this.drawn += 1;
    this.root.dataset.drawn = String(this.drawn);
    return false;
  }
}
