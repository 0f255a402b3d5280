// The map: latent codes projected to 2-D on a canvas, coloured by label / factor / error / KL, with the current z as
// a star that follows z while anything moves it (exact for a linear map: latent axes, PCA; for t-SNE and UMAP the same
// k-nearest-codes placement the server uses), hover to see an image beside its reconstruction (decoded here), click to go to an
// image's code, drag the star to move z in the map's plane, box / lasso selection, wheel zoom, pan, legend.
// Reference maths: vae_core.projections.Projection (transform, _place) and vae_core.latent.nearest_neighbours.

const PALETTE = ["#4B6BFB", "#E4572E", "#17BEBB", "#F3A712", "#76B041", "#A14DA0", "#2E2E3A", "#FF6F91", "#8D6A9F",
  "#00A6ED", "#7FB800", "#FFB400"]; // as ui/explore/projection.py
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
  [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const LEVELS = 48; // colour levels of a continuous colouring
const MARGIN = { left: 48, right: 10, top: 10, bottom: 38 };
const HIT_PX = 9; // how close the pointer must be to a point or the star
const POINT_PX = 5;

function viridis(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i, [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return `rgb(${a.map((v, k) => Math.round(v + f * (b[k] - v))).join(",")})`;
}

function niceTicks(lo, hi, count = 6) {
  const span = hi - lo || 1, raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-6 ? 0 : t);
  return ticks;
}

function sprite(colour, px, ring = false) {
  const c = document.createElement("canvas");
  const size = px + 4;
  Object.assign(c, { width: size, height: size });
  const ctx = c.getContext("2d");
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, px / 2, 0, 2 * Math.PI);
  if (ring) {
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.stroke();
  } else {
    ctx.globalAlpha = 0.8;
    ctx.fillStyle = colour;
    ctx.fill();
  }
  return c;
}

function inPolygon(x, y, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

class MapView {
  constructor(root, explorer) {
    this.root = root;
    this.explorer = explorer;
    this.toolbar = element("div", "vx-toolbar");
    this.stage = element("div", "vx-stage");
    this.base = element("canvas", "vx-map-base");
    this.overlay = element("canvas", "vx-map-overlay");
    this.tooltip = element("div", "vx-tooltip");
    this.tooltip.hidden = true;
    this.legend = element("div", "vx-legend");
    this.stage.append(this.base, this.overlay, this.tooltip);
    root.append(this.toolbar, this.stage, this.legend);
    this.mode = "pan";
    this.hidden = new Set(); // classes switched off in the legend
    this.selected = new Set(); // indices of drawn points
    this.buildToolbar();
    this.bindPointer();
    this.unlisten = explorer.listen(this);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.stage);
  }

  buildToolbar() {
    const button = (label, title, onClick, mode) => {
      const b = element("button", "vx-tool", label);
      b.type = "button";
      b.title = title;
      if (mode) b.dataset.mode = mode;
      b.addEventListener("click", onClick);
      this.toolbar.append(b);
      return b;
    };
    button("Pan", "drag to pan, wheel to zoom, click a point to go to its code", () => this.setMode("pan"), "pan");
    button("Box", "drag a rectangle to select the points inside", () => this.setMode("box"), "box");
    button("Lasso", "draw around the points to select", () => this.setMode("lasso"), "lasso");
    button("Reset view", "zoom out to all points (or double-click the map)", () => this.resetView());
    this.clearButton = button("Clear selection", "forget the selected points", () => this.select([], null));
    this.status = element("span", "vx-map-status");
    this.toolbar.append(this.status);
    this.setMode("pan");
  }

  setMode(mode) {
    this.mode = mode;
    for (const b of this.toolbar.querySelectorAll("button[data-mode]")) b.classList.toggle("vx-on", b.dataset.mode === mode);
  }

  // ------------------------------------------------------------------ data from Python

  update(view, map, colour, model, setTrigger) {
    this.setTrigger = setTrigger;
    this.model = model;
    this.height = view.height;
    if (map !== this.map) this.loadMap(map);
    if (colour !== this.colour) this.loadColour(colour);
    this.selected = new Set((view.selection || []).map((r) => this.indexOf.get(r)).filter((i) => i !== undefined));
    this.clearButton.hidden = this.selected.size === 0;
    this.root.dataset.selected = String(this.selected.size);
    this.ellipses = view.ellipses || []; // mu +- 2 sigma of the selected images' posteriors (ui/explore/posterior.py)
    this.root.dataset.ellipses = String(this.ellipses.length);
    this.root.dataset.state = "ready";
    this.resize(true);
  }

  loadMap(map) {
    this.map = map;
    const { xy, rows } = map.arrays;
    this.n = rows.length;
    this.indexOf = new Map();
    for (let i = 0; i < this.n; i++) this.indexOf.set(rows[i], i);
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < this.n; i++) {
      x0 = Math.min(x0, xy[2 * i]); x1 = Math.max(x1, xy[2 * i]);
      y0 = Math.min(y0, xy[2 * i + 1]); y1 = Math.max(y1, xy[2 * i + 1]);
    }
    const padX = 0.05 * (x1 - x0 || 1), padY = 0.05 * (y1 - y0 || 1);
    this.bounds = [x0 - padX, x1 + padX, y0 - padY, y1 + padY];
    this.hidden.clear();
    this.hover = null;
    this.resetView(false);
    this.root.dataset.points = String(this.n);
    this.root.dataset.method = map.meta.method;
    this.toolbar.querySelector('[data-mode="pan"]').title = map.meta.draggable
      ? "drag the star to move z in this plane; drag elsewhere to pan; wheel to zoom; click a point to go to its code"
      : "drag to pan, wheel to zoom, click a point to go to its code";
  }

  loadColour(colour) {
    this.colour = colour;
    const meta = colour.meta, values = colour.arrays.values;
    this.level = new Uint16Array(this.n); // palette index or colour level of every point
    if (meta.categorical) {
      this.sprites = meta.names.map((_, c) => sprite(PALETTE[c % PALETTE.length], POINT_PX));
      for (let i = 0; i < this.n; i++) this.level[i] = values[i];
    } else {
      const span = meta.max - meta.min || 1;
      this.sprites = Array.from({ length: LEVELS }, (_, l) => sprite(viridis(l / (LEVELS - 1)), POINT_PX));
      for (let i = 0; i < this.n; i++) this.level[i] = Math.round(((values[i] - meta.min) / span) * (LEVELS - 1));
    }
    this.ring = sprite("#111", POINT_PX + 6, true);
    this.buildLegend();
  }

  buildLegend() {
    const meta = this.colour.meta;
    if (!meta.categorical) {
      const bar = element("div", "vx-colourbar");
      bar.style.background = `linear-gradient(to right, ${VIRIDIS.map((_, i) => viridis(i / (VIRIDIS.length - 1))).join(",")})`;
      this.legend.replaceChildren(element("span", "vx-legend-title", meta.title),
        element("span", "", meta.min.toPrecision(3)), bar, element("span", "", meta.max.toPrecision(3)));
      return;
    }
    const entries = meta.names.map((name, c) => {
      const entry = element("button", "vx-legend-entry");
      entry.type = "button";
      entry.title = "click to hide or show this class";
      const swatch = element("span", "vx-swatch");
      swatch.style.background = PALETTE[c % PALETTE.length];
      entry.append(swatch, element("span", "", name));
      entry.addEventListener("click", () => {
        if (this.hidden.has(c)) this.hidden.delete(c); else this.hidden.add(c);
        entry.classList.toggle("vx-off", this.hidden.has(c));
        this.drawBase();
      });
      return entry;
    });
    this.legend.replaceChildren(element("span", "vx-legend-title", meta.title), ...entries);
  }

  // ------------------------------------------------------------------ geometry

  resetView(draw = true) {
    const [x0, x1, y0, y1] = this.bounds;
    this.viewBox = { x0, x1, y0, y1 };
    if (draw) this.resize(true);
  }

  resize(force = false) {
    const width = Math.max(200, Math.floor(this.stage.clientWidth)), height = this.height || 520;
    if (!this.map || (!force && width === this.cssWidth && height === this.cssHeight)) return;
    const dpr = window.devicePixelRatio || 1;
    this.cssWidth = width;
    this.cssHeight = height;
    for (const c of [this.base, this.overlay]) {
      Object.assign(c, { width: Math.round(width * dpr), height: Math.round(height * dpr) });
      c.style.width = `${width}px`;
      c.style.height = `${height}px`;
      c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    this.stage.style.height = `${height}px`;
    this.fitScale();
    this.drawBase();
    this.drawOverlay();
  }

  // pixels per unit on each axis; latent axes and PCA keep one scale for both (distances in z stay honest)
  fitScale() {
    const v = this.viewBox, w = this.cssWidth - MARGIN.left - MARGIN.right, h = this.cssHeight - MARGIN.top - MARGIN.bottom;
    let kx = w / (v.x1 - v.x0), ky = h / (v.y1 - v.y0);
    if (this.map.meta.equal_aspect) {
      const k = Math.min(kx, ky), cx = (v.x0 + v.x1) / 2, cy = (v.y0 + v.y1) / 2;
      kx = ky = k;
      Object.assign(v, { x0: cx - w / 2 / k, x1: cx + w / 2 / k, y0: cy - h / 2 / k, y1: cy + h / 2 / k });
    }
    this.kx = kx;
    this.ky = ky;
  }

  toScreen(x, y) {
    const v = this.viewBox;
    return [MARGIN.left + (x - v.x0) * this.kx, MARGIN.top + (v.y1 - y) * this.ky];
  }

  toData(sx, sy) {
    const v = this.viewBox;
    return [v.x0 + (sx - MARGIN.left) / this.kx, v.y1 - (sy - MARGIN.top) / this.ky];
  }

  // where z lands on the map: vae_core.projections.Projection.transform (a linear map: y = A (z - m))
  place(z) {
    if (this.map.meta.linear) {
      const { mean, components } = this.map.arrays, d = z.length;
      let x = 0, y = 0;
      for (let j = 0; j < d; j++) {
        const c = z[j] - mean[j];
        x += c * components[j];
        y += c * components[d + j];
      }
      return [x, y];
    }
    return this.placeByNeighbours(z);
  }

  // t-SNE, UMAP have no map for new points: the distance-weighted mean of the positions of z's k nearest fitted codes
  // (Projection._place: weights 1 / (distance + 1e-6))
  placeByNeighbours(z) {
    const { codes, xy } = this.map.arrays, d = z.length, k = Math.min(this.map.meta.neighbours, this.n);
    const best = []; // [d2, i], sorted ascending, at most k
    for (let i = 0; i < this.n; i++) {
      let d2 = 0;
      for (let j = 0; j < d; j++) { const t = codes[i * d + j] - z[j]; d2 += t * t; }
      if (best.length < k || d2 < best[best.length - 1][0]) {
        let at = best.length;
        while (at > 0 && best[at - 1][0] > d2) at--;
        best.splice(at, 0, [d2, i]);
        if (best.length > k) best.pop();
      }
    }
    let x = 0, y = 0, total = 0;
    for (const [d2, i] of best) {
      const w = 1 / (Math.sqrt(d2) + 1e-6);
      x += w * xy[2 * i];
      y += w * xy[2 * i + 1];
      total += w;
    }
    return [x / total, y / total];
  }

  // ------------------------------------------------------------------ drawing

  drawBase() {
    if (!this.map || !this.cssWidth) return;
    const ctx = this.base.getContext("2d"), meta = this.map.meta, { xy } = this.map.arrays;
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    this.drawAxes(ctx, meta);
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, this.cssWidth - MARGIN.left - MARGIN.right, this.cssHeight - MARGIN.top - MARGIN.bottom);
    ctx.clip();
    const categorical = this.colour.meta.categorical, half = this.sprites[0].width / 2;
    for (let i = 0; i < this.n; i++) {
      if (categorical && this.hidden.has(this.level[i])) continue;
      const [sx, sy] = this.toScreen(xy[2 * i], xy[2 * i + 1]);
      ctx.drawImage(this.sprites[this.level[i]], sx - half, sy - half);
    }
    const ringHalf = this.ring.width / 2;
    for (const i of this.selected) {
      const [sx, sy] = this.toScreen(xy[2 * i], xy[2 * i + 1]);
      ctx.drawImage(this.ring, sx - ringHalf, sy - ringHalf);
    }
    this.drawEllipses(ctx);
    ctx.restore();
  }

  // each selected image's posterior as its mu +- 2 sigma ellipse, a closed polygon in data coordinates
  drawEllipses(ctx) {
    if (!this.ellipses || !this.ellipses.length) return;
    ctx.strokeStyle = "rgba(20, 20, 40, 0.75)";
    ctx.lineWidth = 1.25;
    for (const { points } of this.ellipses) {
      ctx.beginPath();
      for (let p = 0; p < points.length; p += 2) {
        const [sx, sy] = this.toScreen(points[p], points[p + 1]);
        if (p === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
      }
      ctx.closePath();
      ctx.stroke();
    }
  }

  drawAxes(ctx, meta) {
    const v = this.viewBox, right = this.cssWidth - MARGIN.right, bottom = this.cssHeight - MARGIN.bottom;
    ctx.strokeStyle = "#e6e6ea";
    ctx.fillStyle = "#555";
    ctx.font = "11px sans-serif";
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(v.x0, v.x1)) {
      const [sx] = this.toScreen(t, 0);
      ctx.beginPath(); ctx.moveTo(sx, MARGIN.top); ctx.lineTo(sx, bottom); ctx.stroke();
      ctx.fillText(String(+t.toPrecision(4)), sx, bottom + 3);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of niceTicks(v.y0, v.y1)) {
      const [, sy] = this.toScreen(0, t);
      ctx.beginPath(); ctx.moveTo(MARGIN.left, sy); ctx.lineTo(right, sy); ctx.stroke();
      ctx.fillText(String(+t.toPrecision(4)), MARGIN.left - 4, sy);
    }
    ctx.fillStyle = "#333";
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(meta.x_title, (MARGIN.left + right) / 2, this.cssHeight - 2);
    ctx.save();
    ctx.translate(11, (MARGIN.top + bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(meta.y_title, 0, 0);
    ctx.restore();
  }

  drawOverlay() {
    if (!this.map || !this.cssWidth) return;
    const ctx = this.overlay.getContext("2d");
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    const { xy } = this.map.arrays;
    if (this.hover !== null && this.hover !== undefined) {
      const [sx, sy] = this.toScreen(xy[2 * this.hover], xy[2 * this.hover + 1]);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.arc(sx, sy, 6, 0, 2 * Math.PI); ctx.stroke();
    }
    if (this.explorer.padPoint && this.explorer.padPoint.length === this.explorer.z.length) {
      const [px, py] = this.place(this.explorer.padPoint), [sx, sy] = this.toScreen(px, py);
      ctx.fillStyle = "#17BEBB";
      ctx.strokeStyle = "#fff";
      ctx.beginPath(); ctx.moveTo(sx, sy - 9); ctx.lineTo(sx + 7, sy); ctx.lineTo(sx, sy + 9); ctx.lineTo(sx - 7, sy);
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
    if (this.explorer.z.length === this.map.meta.latent_dim) {
      const [zx, zy] = this.place(this.explorer.z), [sx, sy] = this.toScreen(zx, zy);
      this.star = { x: zx, y: zy, sx, sy };
      this.root.dataset.star = `${zx.toFixed(4)},${zy.toFixed(4)}`;
      ctx.fillStyle = "#FF4B4B";
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (let i = 0; i < 10; i++) {
        const r = i % 2 ? 4.5 : 11, a = -Math.PI / 2 + (i * Math.PI) / 5;
        ctx[i ? "lineTo" : "moveTo"](sx + r * Math.cos(a), sy + r * Math.sin(a));
      }
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
    if (this.shape) {
      ctx.strokeStyle = "#4B6BFB";
      ctx.fillStyle = "rgba(75, 107, 251, 0.08)";
      ctx.setLineDash([4, 3]);
      ctx.beginPath();
      if (this.shape.kind === "box") {
        const [[ax, ay], [bx, by]] = [this.shape.from, this.shape.to];
        ctx.rect(Math.min(ax, bx), Math.min(ay, by), Math.abs(bx - ax), Math.abs(by - ay));
      } else {
        this.shape.points.forEach(([x, y], i) => ctx[i ? "lineTo" : "moveTo"](x, y));
        ctx.closePath();
      }
      ctx.fill(); ctx.stroke();
      ctx.setLineDash([]);
    }
  }

  onZ(z, source, eventAt) {
    if (source === "map" && eventAt !== null) this.dragEventAt = eventAt;
    const version = this.explorer.version;
    if (source === "python" && version !== this.viewVersion && version !== this.followed && this.setTrigger) {
      this.followed = version; // the server moved z in another fragment: have this one follow (views, neighbours)
      this.report("follow", { z_version: version });
    }
    this.requestOverlay();
  }

  onPadPoint() {
    this.requestOverlay();
  }

  requestOverlay() {
    if (this.overlayPending) return;
    this.overlayPending = true;
    requestAnimationFrame((now) => {
      this.overlayPending = false;
      this.drawOverlay();
      if (this.dragEventAt !== undefined && this.dragEventAt !== null) { // a star drag: its frame interval
        if (this.lastDragFrame !== undefined && now - this.lastDragFrame < 250) {
          this.explorer.timing.mapFrame.add(now - this.lastDragFrame);
        }
        this.lastDragFrame = now;
        this.dragEventAt = null;
      }
    });
  }

  // ------------------------------------------------------------------ pointer

  local(event) {
    const r = this.overlay.getBoundingClientRect();
    return [event.clientX - r.left, event.clientY - r.top];
  }

  nearest(sx, sy) {
    const { xy } = this.map.arrays, categorical = this.colour.meta.categorical;
    let best = null, bestD = HIT_PX * HIT_PX;
    for (let i = 0; i < this.n; i++) {
      if (categorical && this.hidden.has(this.level[i])) continue;
      const [px, py] = this.toScreen(xy[2 * i], xy[2 * i + 1]), d = (px - sx) ** 2 + (py - sy) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    return best;
  }

  bindPointer() {
    const o = this.overlay;
    o.addEventListener("pointerdown", (e) => this.down(e));
    o.addEventListener("pointermove", (e) => this.move(e));
    o.addEventListener("pointerup", (e) => this.up(e));
    o.addEventListener("pointercancel", () => { this.gesture = null; this.shape = null; this.drawOverlay(); });
    o.addEventListener("pointerleave", () => { if (!this.gesture) this.setHover(null); });
    o.addEventListener("dblclick", () => this.resetView());
    o.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
  }

  down(e) {
    if (!this.map || e.button !== 0) return;
    const [sx, sy] = this.local(e);
    try { this.overlay.setPointerCapture(e.pointerId); } catch { /* a synthetic pointer (tests): no capture */ }
    this.setHover(null);
    const star = this.star, draggable = this.map.meta.draggable;
    if (draggable && star && (star.sx - sx) ** 2 + (star.sy - sy) ** 2 <= (HIT_PX + 4) ** 2) {
      this.gesture = { kind: "star" };
    } else if (this.mode === "pan") {
      this.gesture = { kind: "pan", from: [sx, sy], box: { ...this.viewBox }, moved: false };
    } else {
      this.gesture = { kind: this.mode };
      this.shape = this.mode === "box" ? { kind: "box", from: [sx, sy], to: [sx, sy] } : { kind: "lasso", points: [[sx, sy]] };
    }
  }

  move(e) {
    if (!this.map) return;
    const [sx, sy] = this.local(e), g = this.gesture;
    if (!g) return this.hoverAt(sx, sy, e.timeStamp);
    if (g.kind === "star") {
      const [x, y] = this.toData(sx, sy);
      this.explorer.setZ(this.moveInPlane(this.explorer.z, x, y), "map", e.timeStamp);
    } else if (g.kind === "pan") {
      const dx = sx - g.from[0], dy = sy - g.from[1];
      if (Math.abs(dx) + Math.abs(dy) > 3) g.moved = true;
      if (g.moved) {
        Object.assign(this.viewBox, { x0: g.box.x0 - dx / this.kx, x1: g.box.x1 - dx / this.kx,
          y0: g.box.y0 + dy / this.ky, y1: g.box.y1 + dy / this.ky });
        this.drawBase();
        this.drawOverlay();
      }
    } else if (this.shape.kind === "box") {
      this.shape.to = [sx, sy];
      this.drawOverlay();
    } else {
      this.shape.points.push([sx, sy]);
      this.drawOverlay();
    }
  }

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
  }

  wheel(e) {
    if (!this.map) return;
    e.preventDefault();
    const [sx, sy] = this.local(e), [x, y] = this.toData(sx, sy), f = Math.exp(e.deltaY / 500), v = this.viewBox;
    Object.assign(v, { x0: x + (v.x0 - x) * f, x1: x + (v.x1 - x) * f, y0: y + (v.y0 - y) * f, y1: y + (v.y1 - y) * f });
    this.kx /= f;
    this.ky /= f;
    this.drawBase();
    this.drawOverlay();
  }

  // the star dragged to (x, y) on a linear map: z moves within the map's plane, keeping its off-plane part
  // (z' = z + A^T (xy' - xy), A's rows being orthonormal: latent axes set those two coordinates, PCA moves z in the
  // principal plane)
  moveInPlane(z, x, y) {
    const out = Float32Array.from(z), [cx, cy] = this.place(z), { components } = this.map.arrays, d = z.length;
    for (let j = 0; j < d; j++) out[j] += components[j] * (x - cx) + components[d + j] * (y - cy);
    return out;
  }

  goTo(i) {
    const { mu, rows } = this.map.arrays, d = this.map.meta.latent_dim;
    const z = mu.slice(i * d, (i + 1) * d);
    this.explorer.setZ(z, "click");
    this.select([rows[i]], z);
  }

  selectInside(shape) {
    const { xy, rows } = this.map.arrays, categorical = this.colour.meta.categorical, picked = [];
    const [[ax, ay], [bx, by]] = shape.kind === "box" ? [shape.from, shape.to] : [[0, 0], [0, 0]];
    for (let i = 0; i < this.n; i++) {
      if (categorical && this.hidden.has(this.level[i])) continue;
      const [px, py] = this.toScreen(xy[2 * i], xy[2 * i + 1]);
      const inside = shape.kind === "box"
        ? px >= Math.min(ax, bx) && px <= Math.max(ax, bx) && py >= Math.min(ay, by) && py <= Math.max(ay, by)
        : shape.points.length > 2 && inPolygon(px, py, shape.points);
      if (inside) picked.push(rows[i]);
    }
    this.select(picked, null);
  }

  // show the selection at once; Python gets the rows (and the z a click moved to) to draw the mosaic
  select(rows, z) {
    this.selected = new Set(rows.map((r) => this.indexOf.get(r)));
    this.clearButton.hidden = this.selected.size === 0;
    this.root.dataset.selected = String(this.selected.size);
    this.drawBase();
    this.report("select", { rows, z: z ? Array.from(z) : null });
  }

  report(event, payload) {
    this.setTrigger?.(event, payload);
  }

  // ------------------------------------------------------------------ hover

  hoverAt(sx, sy, eventAt) {
    const i = this.nearest(sx, sy);
    if (i === this.hover) return;
    this.setHover(i, sx, sy, eventAt);
  }

  setHover(i, sx, sy, eventAt) {
    this.hover = i;
    this.drawOverlay();
    if (i === null || i === undefined) {
      this.tooltip.hidden = true;
      delete this.root.dataset.hoverRow;
      return;
    }
    const meta = this.map.meta, { rows, mu, images, image_index: imageIndex, labels } = this.map.arrays;
    const d = meta.latent_dim, shape = meta.shape, size = shape[0] * shape[1] * shape[2];
    const scale = Math.max(1, Math.round(meta.tooltip_px / shape[1]));
    const picture = (pixels, offset, caption) => {
      const box = element("figure", "vx-tip-image");
      const canvas = element("canvas");
      Object.assign(canvas, { width: shape[2] * scale, height: shape[1] * scale });
      if (pixels) drawImage(canvas, pixels, shape, offset, scale);
      box.append(canvas, element("figcaption", "", caption));
      return box;
    };
    const at = imageIndex ? imageIndex[i] : -1;
    const original = at >= 0 ? picture(images, at * size, "image") : element("div", "vx-tip-missing", "image not sent");
    const recon = this.model ? picture(this.model.decode(mu.subarray(i * d, (i + 1) * d), 1), 0, "reconstruction")
      : element("div", "vx-tip-missing", "reconstructed on the server only");
    const label = labels ? `label ${meta.names[labels[i]]} · ` : "";
    const text = element("div", "vx-tip-text", `${label}#${rows[i]}`);
    const pictures = element("div", "vx-tip-images");
    pictures.append(original, recon);
    this.tooltip.replaceChildren(text, pictures);
    this.tooltip.hidden = false;
    const w = this.tooltip.offsetWidth, h = this.tooltip.offsetHeight;
    const left = sx + 14 + w > this.cssWidth ? sx - 14 - w : sx + 14;
    this.tooltip.style.left = `${Math.max(0, left)}px`;
    this.tooltip.style.top = `${Math.max(0, Math.min(this.cssHeight - h, sy - h / 2))}px`;
    this.root.dataset.hoverRow = String(rows[i]);
    if (eventAt !== undefined) {
      requestAnimationFrame(() => this.explorer.timing.hover.add(performance.now() - eventAt));
    }
  }

  // client coordinates of a drawn row, and of the star (tests, benchmarks)
  clientOf(x, y) {
    const r = this.overlay.getBoundingClientRect(), [sx, sy] = this.toScreen(x, y);
    return { x: r.left + sx, y: r.top + sy };
  }

  rowOnScreen(row) {
    const i = this.indexOf.get(row);
    if (i === undefined) return null;
    const { xy } = this.map.arrays;
    return this.clientOf(xy[2 * i], xy[2 * i + 1]);
  }
}
