// Runs the map's spatial index (ui/explore/live/map_index.js) under Node: reads {xy: [x0, y0, x1, y1, ...],
// queries: [[x, y, kx, ky, radius], ...], boxes: [[ax, bx, ay, by], ...], hidden: [i, ...]} as JSON on stdin and
// prints {nearest: [i or null, ...], nearest_shown: [...] (skipping `hidden`), in_box: [[i, ...], ...]}.
// Used by tests/test_map_index.py.
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "ui", "explore", "live");
const source = readFileSync(join(root, "map_index.js"), "utf8");
const { PointGrid } = await import("data:text/javascript," + encodeURIComponent(source + "\nexport { PointGrid };"));

const input = JSON.parse(readFileSync(0, "utf8"));
const xy = Float32Array.from(input.xy), grid = new PointGrid(xy, xy.length / 2), hidden = new Set(input.hidden);
const nearest = input.queries.map(([x, y, kx, ky, r]) => grid.nearest(x, y, kx, ky, r));
const nearestShown = input.queries.map(([x, y, kx, ky, r]) => grid.nearest(x, y, kx, ky, r, (i) => hidden.has(i)));
const inBox = input.boxes.map(([ax, bx, ay, by]) => grid.inBox(ax, bx, ay, by));
console.log(JSON.stringify({ nearest, nearest_shown: nearestShown, in_box: inBox }));
