// The map's gestures: hover (the nearest drawn point within HIT_PX shows its tooltip), click (z goes to a point's
// posterior mean and selects it), dragging the star (z moves in the map's plane, linear maps only), pan, wheel zoom,
// double-click to reset, box and lasso selection. Methods of MapView (map.js); positions from its frame and placement
// (map_place.js). Reference: the drag moves z along the rows of vae_core.projections' linear map A
// (Placement.moveInPlane); a click's z is the image's posterior mean, vae_core.latent.encode.

const HIT_PX = 9; // how close the pointer must be to a point or the star

function inPolygon(x, y, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

const MapGestures = {
  bindPointer() {
    const o = this.overlay;
    o.addEventListener("pointerdown", (e) => this.down(e));
    o.addEventListener("pointermove", (e) => this.move(e));
    o.addEventListener("pointerup", (e) => this.up(e));
    o.addEventListener("pointercancel", () => { this.gesture = null; this.shape = null; this.drawOverlay(); });
    o.addEventListener("pointerleave", () => { if (!this.gesture) this.setHover(null); });
    o.addEventListener("dblclick", () => this.resetView());
    o.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
  },

  local(event) {
    const r = this.overlay.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  },

  // the shown point nearest the pointer within HIT_PX (the grid of map_index.js visits only the cells nearby)
  nearest(sx, sy) {
    const [x, y] = this.frame.toData(sx, sy), categorical = this.colour.meta.categorical;
    const skip = categorical && this.hidden.size ? (i) => this.hidden.has(this.level[i]) : null;
    return this.grid.nearest(x, y, this.frame.kx, this.frame.ky, HIT_PX, skip);
  },

  hoverAt(sx, sy, eventAt) {
    const i = this.nearest(sx, sy);
    if (i === this.hover) return;
    this.setHover(i, sx, sy, eventAt);
  },

  setHover(i, sx, sy, eventAt) {
    this.hover = i;
    this.drawOverlay();
    if (i === null || i === undefined) {
      this.tooltip.hidden = true;
      delete this.root.dataset.hoverRow;
      return;
    }
    this.images.fetch(this.map.arrays.rows[i]); // its image block, if missing, on the way before anything is drawn
    this.showTooltip(i, sx, sy, eventAt);
    this.root.dataset.hoverRow = String(this.map.arrays.rows[i]);
    if (eventAt !== undefined) {
      requestAnimationFrame(() => this.explorer.timing.hover.add(performance.now() - eventAt));
    }
  },

  down(e) {
    if (!this.map || e.button !== 0) return;
    const [sx, sy] = this.local(e);
    try { this.overlay.setPointerCapture(e.pointerId); } catch { /* a synthetic pointer (tests): no capture */ }
    this.setHover(null);
    const star = this.star, draggable = this.map.meta.draggable;
    if (draggable && star && (star.sx - sx) ** 2 + (star.sy - sy) ** 2 <= (HIT_PX + 4) ** 2) {
      this.gesture = { kind: "star" };
    } else if (this.mode === "pan") {
      this.gesture = { kind: "pan", from: [sx, sy], box: { ...this.frame.box }, moved: false };
    } else {
      this.gesture = { kind: this.mode };
      this.shape = this.mode === "box" ? { kind: "box", from: [sx, sy], to: [sx, sy] } : { kind: "lasso", points: [[sx, sy]] };
    }
  },

  move(e) {
    if (!this.map) return;
    const [sx, sy] = this.local(e), g = this.gesture;
    if (!g) return this.hoverAt(sx, sy, e.timeStamp);
    if (g.kind === "star") {
      const [x, y] = this.frame.toData(sx, sy);
      this.explorer.setZ(this.placement.moveInPlane(this.explorer.z, x, y), "map", e.timeStamp);
    } else if (g.kind === "pan") {
      const dx = sx - g.from[0], dy = sy - g.from[1];
      if (Math.abs(dx) + Math.abs(dy) > 3) g.moved = true;
      if (g.moved) {
        this.frame.panFrom(g.box, dx, dy);
        this.redraw();
      }
    } else if (this.shape.kind === "box") {
      this.shape.to = [sx, sy];
      this.drawOverlay();
    } else {
      this.shape.points.push([sx, sy]);
      this.drawOverlay();
    }
  },

  up(e) {
    const g = this.gesture;
    this.gesture = null;
    if (!g || !this.map) return;
    const [sx, sy] = this.local(e);
    if (g.kind === "star") {
      this.report("z", { z: Array.from(this.explorer.z), reason: "map" });
    } else if (g.kind === "pan" && !g.moved) {
      const i = this.nearest(sx, sy);
      if (i !== null) this.goTo(i);
    } else if (g.kind === "box" || g.kind === "lasso") {
      const shape = this.shape;
      this.shape = null;
      this.selectInside(shape);
      this.drawOverlay();
    }
  },

  wheel(e) {
    if (!this.map) return;
    e.preventDefault();
    const [sx, sy] = this.local(e), [x, y] = this.frame.toData(sx, sy);
    this.frame.zoomAt(x, y, Math.exp(e.deltaY / 500));
    this.redraw();
  },

  // both canvases after the view moved (pan, zoom); the interval since the last such frame is kept (timing.mapPan)
  redraw() {
    const now = performance.now();
    const since = now - this.lastPanFrame; // NaN before the first
    if (since < 250) this.explorer.timing.mapPan.add(since);
    this.lastPanFrame = now;
    this.drawBase();
    this.drawOverlay();
  },

  goTo(i) {
    const { mu, rows } = this.map.arrays, d = this.map.meta.latent_dim;
    const z = mu.slice(i * d, (i + 1) * d);
    this.explorer.setZ(z, "click");
    this.select([rows[i]], z);
  },

  // the shown points inside a box or lasso (in pixels): the grid's points in the shape's bounding box, then each tested
  selectInside(shape) {
    const { xy, rows } = this.map.arrays, categorical = this.colour.meta.categorical, picked = [];
    const [[ax, ay], [bx, by]] = shape.kind === "box" ? [shape.from, shape.to] : [[0, 0], [0, 0]];
    const corners = shape.kind === "box" ? [shape.from, shape.to] : shape.points;
    const xs = corners.map((p) => p[0]), ys = corners.map((p) => p[1]);
    const [lx, ly] = this.frame.toData(Math.min(...xs) - 1, Math.max(...ys) + 1); // screen y grows downwards
    const [hx, hy] = this.frame.toData(Math.max(...xs) + 1, Math.min(...ys) - 1);
    for (const i of this.grid.inBox(lx, hx, ly, hy)) {
      if (categorical && this.hidden.has(this.level[i])) continue;
      const [px, py] = this.frame.toScreen(xy[2 * i], xy[2 * i + 1]);
      const inside = shape.kind === "box"
        ? px >= Math.min(ax, bx) && px <= Math.max(ax, bx) && py >= Math.min(ay, by) && py <= Math.max(ay, by)
        : shape.points.length > 2 && inPolygon(px, py, shape.points);
      if (inside) picked.push(rows[i]);
    }
    this.select(picked, null);
  },
};
