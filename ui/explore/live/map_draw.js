// The map's drawing: the points as small discs coloured by the colouring (a categorical palette or viridis levels),
// written straight into an ImageData (one pass over the points, no draw call per point: 100,000 points redraw in a
// few ms, so pan and zoom keep up), the axes with their ticks and titles, the selected points' rings and posterior
// ellipses (the base canvas); the hovered point, the pad's code (a diamond), the star at z and a box / lasso being
// drawn (the overlay canvas); the legend or colour bar; the tooltip with an image (fetched in blocks, map_images.js)
// and its reconstruction. Methods of MapView (map.js), positions from its frame and placement (map_place.js). Reference: the
// ellipses are vae_core.posterior.posterior_ellipses; the star's position is vae_core.projections.Projection.transform;
// the reconstruction is vae_core.latent.decode at the point's mu.

const PALETTE = ["#4B6BFB", "#E4572E", "#17BEBB", "#F3A712", "#76B041", "#A14DA0", "#2E2E3A", "#FF6F91", "#8D6A9F",
  "#00A6ED", "#7FB800", "#FFB400"]; // as ui/explore/projection.py
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
  [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const LEVELS = 48; // colour levels of a continuous colouring
const POINT_PX = 5; // a point's diameter in CSS pixels, up to CROWDED points
const CROWDED = [[20000, 4], [50000, 3]]; // [more points than this, diameter]: smaller discs keep a dense map legible
const RING_PX = 11; // a selected point's ring
const POINT_ALPHA = 0.8; // points are drawn opaque, their colour mixed with the white page as at this opacity

function viridisRgb(t) {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i, [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return a.map((v, k) => Math.round(v + f * (b[k] - v)));
}

const viridis = (t) => `rgb(${viridisRgb(t).join(",")})`;
const hexRgb = (hex) => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));

// an opaque RGBA pixel as one little-endian uint32 (ImageData's byte order), rgb mixed with white at alpha
function pixel([r, g, b], alpha = 1) {
  const mix = (v) => Math.round(alpha * v + (1 - alpha) * 255);
  return ((255 << 24) | (mix(b) << 16) | (mix(g) << 8) | mix(r)) >>> 0;
}

const pointPx = (n) => CROWDED.reduce((px, [above, d]) => (n > above ? d : px), POINT_PX);

// the device-pixel offsets [dx, dy, ...] of a disc of diameter px (or a ring of width `ring` at its edge)
function discOffsets(px, ring = 0) {
  const r = px / 2, out = [], reach = Math.ceil(r);
  for (let dy = -reach; dy <= reach; dy++) {
    for (let dx = -reach; dx <= reach; dx++) {
      const d = Math.hypot(dx, dy);
      if (d <= r && (!ring || d > r - ring)) out.push(dx, dy);
    }
  }
  return Int32Array.from(out);
}

function niceTicks(lo, hi, count = 6) {
  const span = hi - lo || 1, raw = span / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-6 ? 0 : t);
  return ticks;
}

const MapDrawing = {
  loadColour(colour) {
    this.colour = colour;
    const meta = colour.meta, values = colour.arrays.values;
    this.level = new Uint16Array(this.n); // palette index or colour level of every point
    if (meta.categorical) {
      this.colours = Uint32Array.from(meta.names, (_, c) => pixel(hexRgb(PALETTE[c % PALETTE.length]), POINT_ALPHA));
      for (let i = 0; i < this.n; i++) this.level[i] = values[i];
    } else {
      const span = meta.max - meta.min || 1;
      this.colours = Uint32Array.from({ length: LEVELS }, (_, l) => pixel(viridisRgb(l / (LEVELS - 1)), POINT_ALPHA));
      for (let i = 0; i < this.n; i++) this.level[i] = Math.round(((values[i] - meta.min) / span) * (LEVELS - 1));
    }
    this.buildLegend();
  },

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
  },

  drawBase() {
    if (!this.map || !this.cssWidth) return;
    const ctx = this.base.getContext("2d"), meta = this.map.meta, { xy } = this.map.arrays;
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    this.drawAxes(ctx, meta);
    ctx.drawImage(this.drawPoints(xy), 0, 0, this.cssWidth, this.cssHeight);
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, this.cssWidth - MARGIN.left - MARGIN.right, this.cssHeight - MARGIN.top - MARGIN.bottom);
    ctx.clip();
    this.drawEllipses(ctx);
    ctx.restore();
    this.root.dataset.drawn = String(this.drawnCount);
  },

  // every shown point as a disc and every selected one with a ring, written into an ImageData of the base canvas's
  // device pixels (clipped to the plot area); returns the canvas holding it. this.drawnCount: points inside the plot.
  drawPoints(xy) {
    const W = this.base.width, H = this.base.height, dpr = W / this.cssWidth;
    if (!this.points || this.points.width !== W || this.points.height !== H) {
      this.points = Object.assign(document.createElement("canvas"), { width: W, height: H });
      this.pointsImage = new ImageData(W, H);
      this.pointsBuffer = new Uint32Array(this.pointsImage.data.buffer);
    }
    if (this.discFor !== `${dpr}/${W}/${this.n}`) { // offsets [dx, dy, ...] and as steps in the buffer (dy W + dx)
      this.disc = discOffsets(pointPx(this.n) * dpr);
      this.ringOffsets = discOffsets(RING_PX * dpr, 2 * dpr);
      const steps = (o) => Int32Array.from({ length: o.length / 2 }, (_, k) => o[2 * k + 1] * W + o[2 * k]);
      this.discSteps = steps(this.disc);
      this.ringSteps = steps(this.ringOffsets);
      this.discFor = `${dpr}/${W}/${this.n}`;
    }
    const buf = this.pointsBuffer, v = this.frame.box, kx = this.frame.kx * dpr, ky = this.frame.ky * dpr;
    const left = Math.ceil(MARGIN.left * dpr), top = Math.ceil(MARGIN.top * dpr);
    const right = Math.floor((this.cssWidth - MARGIN.right) * dpr);
    const bottom = Math.floor((this.cssHeight - MARGIN.bottom) * dpr);
    const ox = MARGIN.left * dpr - v.x0 * kx, oy = MARGIN.top * dpr + v.y1 * ky; // device x = ox + kx x, y = oy - ky y
    const categorical = this.colour.meta.categorical, hidden = this.hidden, level = this.level, colours = this.colours;
    const reach = Math.ceil((RING_PX * dpr) / 2) + 1; // no offset goes further
    buf.fill(0);
    // point i's disc (or ring) in colour; whether its centre is inside the plot
    const stamp = (offsets, steps, i, colour) => {
      const px = Math.round(ox + kx * xy[2 * i]), py = Math.round(oy - ky * xy[2 * i + 1]);
      if (!(px >= left - reach && px <= right + reach && py >= top - reach && py <= bottom + reach)) return false;
      if (px >= left + reach && px <= right - reach && py >= top + reach && py <= bottom - reach) {
        const at = py * W + px; // well inside: no pixel to clip
        for (let k = 0; k < steps.length; k++) buf[at + steps[k]] = colour;
        return true;
      }
      for (let k = 0; k < offsets.length; k += 2) {
        const x = px + offsets[k], y = py + offsets[k + 1];
        if (x >= left && x < right && y >= top && y < bottom) buf[y * W + x] = colour;
      }
      return px >= left && px < right && py >= top && py < bottom;
    };
    const disc = this.disc, discSteps = this.discSteps, skip = categorical && hidden.size > 0;
    let drawn = 0;
    for (let i = 0; i < this.n; i++) {
      if (skip && hidden.has(level[i])) continue;
      if (stamp(disc, discSteps, i, colours[level[i]])) drawn += 1;
    }
    const ring = pixel([17, 17, 17]);
    for (const i of this.selected) stamp(this.ringOffsets, this.ringSteps, i, ring);
    this.drawnCount = drawn;
    this.points.getContext("2d").putImageData(this.pointsImage, 0, 0);
    return this.points;
  },

  // each selected image's posterior as its mu +- 2 sigma ellipse, a closed polygon in data coordinates
  drawEllipses(ctx) {
    if (!this.ellipses || !this.ellipses.length) return;
    ctx.strokeStyle = "rgba(20, 20, 40, 0.75)";
    ctx.lineWidth = 1.25;
    for (const { points } of this.ellipses) {
      ctx.beginPath();
      for (let p = 0; p < points.length; p += 2) {
        const [sx, sy] = this.frame.toScreen(points[p], points[p + 1]);
        if (p === 0) ctx.moveTo(sx, sy); else ctx.lineTo(sx, sy);
      }
      ctx.closePath();
      ctx.stroke();
    }
  },

  drawAxes(ctx, meta) {
    const v = this.frame.box, right = this.cssWidth - MARGIN.right, bottom = this.cssHeight - MARGIN.bottom;
    ctx.strokeStyle = "#e6e6ea";
    ctx.fillStyle = "#555";
    ctx.font = "11px sans-serif";
    ctx.lineWidth = 1;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(v.x0, v.x1)) {
      const [sx] = this.frame.toScreen(t, 0);
      ctx.beginPath(); ctx.moveTo(sx, MARGIN.top); ctx.lineTo(sx, bottom); ctx.stroke();
      ctx.fillText(String(+t.toPrecision(4)), sx, bottom + 3);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of niceTicks(v.y0, v.y1)) {
      const [, sy] = this.frame.toScreen(0, t);
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
  },

  drawOverlay() {
    if (!this.map || !this.cssWidth) return;
    const ctx = this.overlay.getContext("2d");
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    const { xy } = this.map.arrays;
    if (this.hover !== null && this.hover !== undefined) {
      const [sx, sy] = this.frame.toScreen(xy[2 * this.hover], xy[2 * this.hover + 1]);
      ctx.strokeStyle = "#111";
      ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.arc(sx, sy, 6, 0, 2 * Math.PI); ctx.stroke();
    }
    if (this.explorer.padPoint && this.explorer.padPoint.length === this.explorer.z.length) {
      const [px, py] = this.placement.place(this.explorer.padPoint), [sx, sy] = this.frame.toScreen(px, py);
      ctx.fillStyle = "#17BEBB";
      ctx.strokeStyle = "#fff";
      ctx.beginPath(); ctx.moveTo(sx, sy - 9); ctx.lineTo(sx + 7, sy); ctx.lineTo(sx, sy + 9); ctx.lineTo(sx - 7, sy);
      ctx.closePath(); ctx.fill(); ctx.stroke();
    }
    if (this.explorer.z.length === this.map.meta.latent_dim) {
      const [zx, zy] = this.placement.place(this.explorer.z), [sx, sy] = this.frame.toScreen(zx, zy);
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
  },

  // the tooltip beside the pointer at (sx, sy): drawn point i's image (its block fetched if not here yet, then drawn in
  // place if i is still hovered) and its reconstruction, decoded here
  showTooltip(i, sx, sy, eventAt) {
    const meta = this.map.meta, { rows, mu, labels } = this.map.arrays;
    const d = meta.latent_dim, shape = meta.shape, row = rows[i];
    const scale = Math.max(1, Math.round(meta.tooltip_px / shape[1]));
    const picture = (pixels, offset, caption) => {
      const box = element("figure", "vx-tip-image");
      const canvas = element("canvas");
      Object.assign(canvas, { width: shape[2] * scale, height: shape[1] * scale });
      if (pixels) drawImage(canvas, pixels, shape, offset, scale);
      box.append(canvas, element("figcaption", "", caption));
      return box;
    };
    const shown = (image) => { // the original image drawn: its latency from the pointer event to that frame
      this.root.dataset.hoverImage = String(row);
      const timing = this.explorer.timing.hoverImage;
      if (eventAt !== undefined) requestAnimationFrame(() => timing.add(performance.now() - eventAt));
      return picture(image.pixels, image.offset, "image");
    };
    const image = this.images.image(row);
    let original;
    this.root.dataset.hoverImage = "";
    if (image) {
      original = shown(image);
    } else if (this.images.spec) {
      original = element("div", "vx-tip-missing", "loading image…");
      this.images.fetch(row).then((ok) => {
        if (this.hover !== i || !original.isConnected) return;
        const got = ok && this.images.image(row);
        if (got) original.replaceWith(shown(got));
        else original.textContent = "image not available";
      });
    } else {
      original = element("div", "vx-tip-missing", "image not available");
    }
    const recon = this.model ? picture(this.model.decode(mu.subarray(i * d, (i + 1) * d), 1), 0, "reconstruction")
      : element("div", "vx-tip-missing", "reconstructed on the server only");
    const label = labels ? `label ${meta.names[labels[i]]} · ` : "";
    const text = element("div", "vx-tip-text", `${label}#${row}`);
    const pictures = element("div", "vx-tip-images");
    pictures.append(original, recon);
    this.tooltip.replaceChildren(text, pictures);
    this.tooltip.hidden = false;
    const w = this.tooltip.offsetWidth, h = this.tooltip.offsetHeight;
    const left = sx + 14 + w > this.cssWidth ? sx - 14 - w : sx + 14;
    this.tooltip.style.left = `${Math.max(0, left)}px`;
    this.tooltip.style.top = `${Math.max(0, Math.min(this.cssHeight - h, sy - h / 2))}px`;
  },
};
