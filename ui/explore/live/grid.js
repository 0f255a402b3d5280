// Grids of images decoded around the current z, in the browser, following z as it moves: traversals (one row per
// latent dimension swept over its range, the others held at z) and the 2-D manifold (two dimensions on a grid).
// Tiles are decoded in batches within what is left of each display frame (FRAME_BUDGET_MS, shared with the panel's
// main image), cycling through the grid, so a grid never holds a frame back; a model too slow to fit a tile in a
// frame's leftover waits until z pauses. Reference maths: vae_core.latent.traversal_grid and manifold_grid.

const FRAME_BUDGET_MS = 10; // decoding per 60 Hz frame (main image and grids); the rest of the frame is the browser's
const GAP_PX = 2;
const TICK_PX = 3; // below each traversal row: where z sits on it

const linspace = (lo, hi, steps, s) => lo + ((hi - lo) * s) / (steps - 1);

class ZGrid {
  constructor(explorer, canvas, labels) {
    this.explorer = explorer;
    this.canvas = canvas;
    this.labels = labels; // a column of row labels, or null
    this.spec = null;
    this.left = 0; // tiles to decode at the current z
    this.done = 0; // times every tile was drawn
    this.next = 0;
  }

  // spec: {kind: "traverse", dims: [{index, lo, hi}], steps} or {kind: "manifold", x: {index, lo, hi}, y, steps}
  configure(model, spec, tilePx, maxWidth = Infinity) {
    this.model = model;
    this.spec = spec;
    const [, h, w] = model.shape;
    this.rows = spec.kind === "traverse" ? spec.dims.length : spec.steps;
    this.cols = spec.steps;
    this.scale = Math.max(1, Math.min(Math.round(tilePx / h), Math.floor(maxWidth / this.cols / w)));
    this.tileW = w * this.scale;
    this.tileH = h * this.scale;
    this.pitch = this.tileH + GAP_PX + (spec.kind === "traverse" ? TICK_PX : 0);
    Object.assign(this.canvas, { width: this.cols * (this.tileW + GAP_PX) - GAP_PX, height: this.rows * this.pitch });
    if (this.labels) {
      this.labels.replaceChildren(...(spec.kind === "traverse" ? spec.dims : []).map((d) => {
        const label = element("div", "vx-strip-label", `z${d.index}`);
        label.style.height = `${this.pitch}px`;
        return label;
      }));
    }
    this.canvas.hidden = this.rows === 0;
    this.next = 0;
    this.follow();
  }

  // z moved: every tile once more, from where the grid is now. data-done (how many times every tile was drawn) is
  // there only while every tile shows the current z: a reader of the canvas and z at one moment can rely on it.
  follow() {
    if (!this.spec) return;
    this.left = this.rows * this.cols;
    delete this.canvas.dataset.done;
    this.explorer.requestFrame(this, 1);
  }

  // the z of tile (r, c): the current z with the grid's dimensions set
  tileZ(out, offset, z, r, c) {
    out.set(z, offset);
    const spec = this.spec;
    if (spec.kind === "traverse") {
      const d = spec.dims[r];
      out[offset + d.index] = linspace(d.lo, d.hi, spec.steps, c);
    } else {
      out[offset + spec.x.index] = linspace(spec.x.lo, spec.x.hi, spec.steps, c);
      out[offset + spec.y.index] = linspace(spec.y.hi, spec.y.lo, spec.steps, r); // top row: high values
    }
  }

  // one frame's share of the tiles; true while some are left (explorer.js runFrame)
  frame(frameStart) {
    if (!this.canvas.isConnected || !this.spec) return false;
    const z = this.explorer.z, total = this.rows * this.cols, size = this.model.imageSize;
    const perImage = Math.max(0.02, this.explorer.timing.decode.quantile(0.5) || 1);
    const room = () => FRAME_BUDGET_MS - (performance.now() - frameStart);
    while (this.left > 0 && room() >= perImage) {
      const count = Math.min(this.left, Math.floor(room() / perImage));
      const zs = new Float32Array(count * z.length), tiles = [];
      for (let i = 0; i < count; i++) {
        const t = (this.next + i) % total, r = Math.floor(t / this.cols), c = t % this.cols;
        this.tileZ(zs, i * z.length, z, r, c);
        tiles.push([r, c]);
      }
      const images = this.model.decode(zs, count);
      tiles.forEach(([r, c], i) => drawImage(this.canvas, images, this.model.shape, i * size, this.scale,
        c * (this.tileW + GAP_PX), r * this.pitch));
      this.next = (this.next + count) % total;
      this.left -= count;
    }
    if (this.spec.kind === "traverse") this.markZ(z);
    if (this.left <= 0) this.canvas.dataset.done = String((this.done += 1));
    return this.left > 0;
  }

  // a tick under each traversal row where z sits on it
  markZ(z) {
    const ctx = this.canvas.getContext("2d");
    this.spec.dims.forEach((d, r) => {
      const y = r * this.pitch + this.tileH + 1;
      const at = Math.min(1, Math.max(0, (z[d.index] - d.lo) / (d.hi - d.lo)));
      ctx.clearRect(0, y, this.canvas.width, TICK_PX);
      ctx.fillStyle = "#FF4B4B";
      ctx.fillRect(Math.round(at * (this.canvas.width - 6)), y, 6, TICK_PX);
    });
  }
}

// The "grid" part: a ZGrid of its own (the Traversals and Manifold views), following the page's z.
class GridPart {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    const box = element("div", "vx-strip-box");
    this.canvas = element("canvas", "vx-grid");
    this.labels = element("div", "vx-strip-labels");
    box.append(this.labels, this.canvas);
    root.append(box);
    this.grid = new ZGrid(explorer, this.canvas, this.labels);
    explorer.listen(this);
  }

  update(view, model) {
    const signature = JSON.stringify([view.assets.model, view.grid, view.tile_px]);
    if (signature !== this.layout) {
      this.layout = signature;
      this.grid.configure(model, view.grid, view.tile_px, (this.root.clientWidth || 800) - 40);
    }
  }

  onZ() {
    this.grid.follow();
  }
}
