// The map's drawing: the points as sprites coloured by the colouring (a categorical palette or viridis levels), the
// axes with their ticks and titles, the selected points' rings and posterior ellipses (the base canvas); the hovered
// point, the pad's code (a diamond), the star at z and a box / lasso being drawn (the overlay canvas); the legend or
// colour bar; the tooltip with an image and its reconstruction. Methods of MapView (map.js), positions from its frame
// and placement (map_place.js). Reference: the ellipses are vae_core.posterior.posterior_ellipses; the star's position
// is vae_core.projections.Projection.transform; the reconstruction is vae_core.latent.decode at the point's mu.

const PALETTE = ["#4B6BFB", "#E4572E", "#17BEBB", "#F3A712", "#76B041", "#A14DA0", "#2E2E3A", "#FF6F91", "#8D6A9F",
  "#00A6ED", "#7FB800", "#FFB400"]; // as ui/explore/projection.py
const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
  [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
const LEVELS = 48; // colour levels of a continuous colouring
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

const MapDrawing = {
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
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, this.cssWidth - MARGIN.left - MARGIN.right, this.cssHeight - MARGIN.top - MARGIN.bottom);
    ctx.clip();
    const categorical = this.colour.meta.categorical, half = this.sprites[0].width / 2;
    for (let i = 0; i < this.n; i++) {
      if (categorical && this.hidden.has(this.level[i])) continue;
      const [sx, sy] = this.frame.toScreen(xy[2 * i], xy[2 * i + 1]);
      ctx.drawImage(this.sprites[this.level[i]], sx - half, sy - half);
    }
    const ringHalf = this.ring.width / 2;
    for (const i of this.selected) {
      const [sx, sy] = this.frame.toScreen(xy[2 * i], xy[2 * i + 1]);
      ctx.drawImage(this.ring, sx - ringHalf, sy - ringHalf);
    }
    this.drawEllipses(ctx);
    ctx.restore();
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

  // the tooltip beside the pointer at (sx, sy): drawn point i's image (if sent) and its reconstruction, decoded here
  showTooltip(i, sx, sy) {
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
  },
};
