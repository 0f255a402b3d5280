// The drawing pad: paint an image at the dataset's own resolution (shown enlarged), with the mouse, a pen or a
// finger; every stroke is encoded here in the browser (q(z|x)'s mean), its reconstruction decoded and its code
// placed on the map (a diamond); "Use as z" moves the sliders there. 1-channel data only (Python hides it for RGB).
// Reference maths: vae_core.export.reference_encode and reference_decode.

class Pad {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    this.canvas = element("canvas", "vx-pad");
    this.recon = element("canvas", "vx-canvas");
    this.text = element("div", "vx-note", "draw in the square");
    this.brush = element("input", "vx-brush");
    Object.assign(this.brush, { type: "range", min: "0.5", max: "4", step: "0.1" });
    this.brush.setAttribute("aria-label", "brush size");
    const brushLabel = element("label", "vx-brush-label", "Brush ");
    brushLabel.append(this.brush);
    const clear = element("button", "vx-tool", "Clear");
    clear.type = "button";
    clear.addEventListener("click", () => this.clear());
    this.use = element("button", "vx-tool vx-primary", "Use as z");
    this.use.type = "button";
    this.use.disabled = true;
    this.use.addEventListener("click", () => this.useAsZ());
    const controls = element("div", "vx-pad-controls");
    controls.append(brushLabel, clear, this.use);
    const drawn = element("figure", "vx-tip-image");
    drawn.append(this.canvas, element("figcaption", "", "your drawing"));
    const rebuilt = element("figure", "vx-tip-image");
    rebuilt.append(this.recon, element("figcaption", "", "reconstruction"));
    const pictures = element("div", "vx-pad-images");
    pictures.append(drawn, rebuilt);
    root.append(pictures, controls, this.text);
    this.bind();
  }

  update(view, model, setTrigger) {
    this.setTrigger = setTrigger;
    const fresh = this.model !== model;
    this.model = model;
    if (!fresh) return;
    const [, h, w] = model.shape;
    this.shape = model.shape;
    this.scale = view.scale;
    for (const c of [this.canvas, this.recon]) Object.assign(c, { width: w * view.scale, height: h * view.scale });
    this.brush.value = String(view.brush);
    this.clear();
    this.root.dataset.ready = "true"; // sized for the model: strokes land where they are drawn from now on
  }

  bind() {
    const c = this.canvas;
    c.style.touchAction = "none"; // a finger draws instead of scrolling the page
    c.addEventListener("pointerdown", (e) => {
      if (!this.model) return; // no model yet: the canvas has no pixels to paint
      c.setPointerCapture(e.pointerId);
      this.last = this.cell(e);
      this.paint(this.last, this.last);
    });
    c.addEventListener("pointermove", (e) => {
      if (!this.last) return;
      const at = this.cell(e);
      this.paint(this.last, at);
      this.last = at;
    });
    const end = () => { this.last = null; };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }

  cell(e) {
    const r = this.canvas.getBoundingClientRect(), [, h, w] = this.shape;
    return [((e.clientX - r.left) / r.width) * w, ((e.clientY - r.top) / r.height) * h];
  }

  // ink along the segment a-b: each pixel keeps the most ink it got, 1 within the brush's radius, fading over one
  // pixel beyond it (pixel centres at +0.5)
  paint(a, b) {
    const [, h, w] = this.shape, r = Number(this.brush.value), x = this.pixels;
    const [ax, ay] = a, [bx, by] = b, dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (let py = Math.max(0, Math.floor(Math.min(ay, by) - r - 1)); py < Math.min(h, Math.ceil(Math.max(ay, by) + r + 1)); py++) {
      for (let px = Math.max(0, Math.floor(Math.min(ax, bx) - r - 1)); px < Math.min(w, Math.ceil(Math.max(ax, bx) + r + 1)); px++) {
        const cx = px + 0.5, cy = py + 0.5;
        const t = len2 ? Math.min(1, Math.max(0, ((cx - ax) * dx + (cy - ay) * dy) / len2)) : 0;
        const dist = Math.hypot(cx - (ax + t * dx), cy - (ay + t * dy));
        const ink = Math.min(1, Math.max(0, r + 0.5 - dist));
        if (ink > x[py * w + px]) x[py * w + px] = ink;
      }
    }
    this.drawn = true;
    this.requestEncode();
  }

  clear() {
    const [c, h, w] = this.shape;
    this.pixels = new Float32Array(c * h * w);
    this.drawn = false;
    this.mu = null;
    this.use.disabled = true;
    drawImage(this.canvas, this.pixels, this.shape);
    this.recon.getContext("2d").clearRect(0, 0, this.recon.width, this.recon.height);
    this.text.textContent = "draw in the square";
    this.explorer.setPadPoint(null);
  }

  requestEncode() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.encode();
    });
  }

  encode() {
    const start = performance.now();
    drawImage(this.canvas, this.pixels, this.shape);
    const { mu } = this.model.encode(this.pixels, 1);
    drawImage(this.recon, this.model.decode(mu, 1), this.shape);
    const ms = performance.now() - start;
    this.explorer.timing.pad.add(ms);
    this.mu = mu;
    this.use.disabled = false;
    this.root.dataset.encoded = String(this.explorer.timing.pad.count);
    this.text.textContent = `encoded and decoded in your browser in ${ms.toFixed(1)} ms · the ◆ on the map is its code`;
    this.explorer.setPadPoint(mu);
  }

  useAsZ() {
    if (!this.mu) return;
    this.explorer.setZ(this.mu, "pad");
    this.setTrigger?.("z", { z: Array.from(this.mu), reason: "pad" });
  }
}
