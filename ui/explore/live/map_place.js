// The map's placement maths, no DOM: where a code z lands on the 2-D map, how dragging the star moves z, and the frame
// between the map's data coordinates and the canvas's pixels (pan, zoom, one scale for both axes on exact maps).
// Reference: vae_core.projections.Projection.transform (a linear method: y = A (z - m), A and m sent as the map's
// `components` and `mean`; otherwise Projection._place: the distance-weighted mean of the positions of z's k nearest
// fitted codes, vae_core.latent.nearest_neighbours). The frame is display only (no reference in vae_core).

const MARGIN = { left: 48, right: 10, top: 10, bottom: 38 }; // pixels around the plot area (axes, titles)

class Placement {
  // map: the map asset (ui/explore/projection.py map_asset): meta.linear, meta.neighbours; arrays xy, mean,
  // components (linear maps), codes (the others)
  constructor(map) {
    this.meta = map.meta;
    this.arrays = map.arrays;
    this.n = map.arrays.rows.length;
  }

  // where z lands on the map: Projection.transform
  place(z) {
    if (!this.meta.linear) return this.placeByNeighbours(z);
    const { mean, components } = this.arrays, d = z.length;
    let x = 0, y = 0;
    for (let j = 0; j < d; j++) {
      const c = z[j] - mean[j];
      x += c * components[j];
      y += c * components[d + j];
    }
    return [x, y];
  }

  // no map for new points (t-SNE, UMAP): the distance-weighted mean of the positions of z's k nearest fitted codes
  // (Projection._place: weights 1 / (distance + 1e-6))
  placeByNeighbours(z) {
    const { codes, xy } = this.arrays, d = z.length, k = Math.min(this.meta.neighbours, this.n);
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

  // the star dragged to (x, y) on a linear map: z moves within the map's plane, keeping its off-plane part
  // (z' = z + A^T (xy' - xy), A's rows being orthonormal: latent axes set those two coordinates, PCA moves z in the
  // principal plane)
  moveInPlane(z, x, y) {
    const out = Float32Array.from(z), [cx, cy] = this.place(z), { components } = this.arrays, d = z.length;
    for (let j = 0; j < d; j++) out[j] += components[j] * (x - cx) + components[d + j] * (y - cy);
    return out;
  }
}

class Frame {
  // the n points' positions xy (2n, interleaved): the full view is their bounding box, padded by 5%
  constructor(xy, n) {
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, xy[2 * i]); x1 = Math.max(x1, xy[2 * i]);
      y0 = Math.min(y0, xy[2 * i + 1]); y1 = Math.max(y1, xy[2 * i + 1]);
    }
    const padX = 0.05 * (x1 - x0 || 1), padY = 0.05 * (y1 - y0 || 1);
    this.bounds = [x0 - padX, x1 + padX, y0 - padY, y1 + padY];
    this.reset();
  }

  // back to every point in view
  reset() {
    const [x0, x1, y0, y1] = this.bounds;
    this.box = { x0, x1, y0, y1 }; // the data coordinates in view
  }

  // pixels per unit on each axis for a canvas of width x height; equal aspect (exact maps: latent axes, PCA) keeps
  // one scale for both, so distances in z stay honest
  fit(width, height, equalAspect) {
    const v = this.box, w = width - MARGIN.left - MARGIN.right, h = height - MARGIN.top - MARGIN.bottom;
    let kx = w / (v.x1 - v.x0), ky = h / (v.y1 - v.y0);
    if (equalAspect) {
      const k = Math.min(kx, ky), cx = (v.x0 + v.x1) / 2, cy = (v.y0 + v.y1) / 2;
      kx = ky = k;
      Object.assign(v, { x0: cx - w / 2 / k, x1: cx + w / 2 / k, y0: cy - h / 2 / k, y1: cy + h / 2 / k });
    }
    this.kx = kx;
    this.ky = ky;
  }

  toScreen(x, y) {
    const v = this.box;
    return [MARGIN.left + (x - v.x0) * this.kx, MARGIN.top + (v.y1 - y) * this.ky];
  }

  toData(sx, sy) {
    const v = this.box;
    return [v.x0 + (sx - MARGIN.left) / this.kx, v.y1 - (sy - MARGIN.top) / this.ky];
  }

  // the view `from` (a copy of an earlier box) moved by a pointer that travelled (dx, dy) pixels
  panFrom(from, dx, dy) {
    Object.assign(this.box, { x0: from.x0 - dx / this.kx, x1: from.x1 - dx / this.kx,
      y0: from.y0 + dy / this.ky, y1: from.y1 + dy / this.ky });
  }

  // zoom by a factor f around the data point (x, y): f > 1 zooms out
  zoomAt(x, y, f) {
    const v = this.box;
    Object.assign(v, { x0: x + (v.x0 - x) * f, x1: x + (v.x1 - x) * f,
      y0: y + (v.y0 - y) * f, y1: y + (v.y1 - y) * f });
    this.kx /= f;
    this.ky /= f;
  }
}
