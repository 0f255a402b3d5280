// A uniform grid over the map's points (data coordinates), no DOM: the nearest point to the pointer within a radius in
// pixels (hover, click) and the points inside a rectangle (box and lasso selection) without visiting all of them.
// Built once per map (a counting sort of the points by cell); a query visits only the cells the pixel radius or the
// rectangle covers. Reference: brute force over every point (tests/test_map_index.py compares them in Node).

class PointGrid {
  // xy: 2n interleaved positions; about `perCell` points per cell on average
  constructor(xy, n, perCell = 2) {
    this.xy = xy;
    this.n = n;
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x;
      if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 >= x0)) [x0, x1, y0, y1] = [0, 1, 0, 1]; // no (finite) points
    this.side = Math.max(1, Math.ceil(Math.sqrt(n / perCell)));
    this.x0 = x0;
    this.y0 = y0;
    this.cw = (x1 - x0 || 1) / this.side;
    this.ch = (y1 - y0 || 1) / this.side;
    const cells = this.side * this.side, cell = new Int32Array(n);
    this.start = new Int32Array(cells + 1);
    for (let i = 0; i < n; i++) {
      cell[i] = this.cellX(xy[2 * i]) + this.side * this.cellY(xy[2 * i + 1]);
      this.start[cell[i] + 1] += 1;
    }
    for (let c = 0; c < cells; c++) this.start[c + 1] += this.start[c];
    const fill = this.start.slice(0, cells);
    this.order = new Int32Array(n); // point indices sorted by cell
    for (let i = 0; i < n; i++) this.order[fill[cell[i]]++] = i;
  }

  cellX(x) { return Math.min(this.side - 1, Math.max(0, Math.floor((x - this.x0) / this.cw))) | 0; }

  cellY(y) { return Math.min(this.side - 1, Math.max(0, Math.floor((y - this.y0) / this.ch))) | 0; }

  // visit(i) for every point in the cells that the data rectangle [ax, bx] x [ay, by] touches
  visitBox(ax, bx, ay, by, visit) {
    const cx0 = this.cellX(Math.min(ax, bx)), cx1 = this.cellX(Math.max(ax, bx));
    const cy0 = this.cellY(Math.min(ay, by)), cy1 = this.cellY(Math.max(ay, by));
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let c = cy * this.side + cx0, end = cy * this.side + cx1; c <= end; c++) {
        for (let k = this.start[c]; k < this.start[c + 1]; k++) visit(this.order[k]);
      }
    }
  }

  // the point nearest (x, y) in pixels, kx and ky being pixels per data unit on each axis, within `radius` pixels
  // (inclusive), skipping those skip(i) says; ties go to the lower index. null when there is none.
  nearest(x, y, kx, ky, radius, skip = null) {
    let best = null, bestD = radius * radius;
    const xy = this.xy;
    this.visitBox(x - radius / kx, x + radius / kx, y - radius / ky, y + radius / ky, (i) => {
      if (skip && skip(i)) return;
      const dx = (xy[2 * i] - x) * kx, dy = (xy[2 * i + 1] - y) * ky, d = dx * dx + dy * dy;
      if (d < bestD || (d === bestD && (best === null || i < best))) { bestD = d; best = i; }
    });
    return best;
  }

  // indices of the points inside the data rectangle (edges included), ascending
  inBox(ax, bx, ay, by) {
    const xy = this.xy, out = [], [lx, hx] = [Math.min(ax, bx), Math.max(ax, bx)];
    const [ly, hy] = [Math.min(ay, by), Math.max(ay, by)];
    this.visitBox(lx, hx, ly, hy, (i) => {
      const px = xy[2 * i], py = xy[2 * i + 1];
      if (px >= lx && px <= hx && py >= ly && py <= hy) out.push(i);
    });
    return out.sort((a, b) => a - b);
  }
}
