// Runs the map's placement maths (ui/explore/live/map_place.js) under Node: reads {map: {meta, arrays}, zs, drags}
// as JSON on stdin (arrays as lists; drags as [z, x, y]) and prints {placed: [[x, y], ...], moved: [z', ...]}.
// Used by tests/test_map_placement.py.
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "ui", "explore", "live");
const source = readFileSync(join(root, "map_place.js"), "utf8");
const { Placement } = await import("data:text/javascript," + encodeURIComponent(source + "\nexport { Placement };"));

const input = JSON.parse(readFileSync(0, "utf8"));
const arrays = Object.fromEntries(Object.entries(input.map.arrays).map(([name, v]) => [name, Float32Array.from(v)]));
const placement = new Placement({ meta: input.map.meta, arrays });
const placed = input.zs.map((z) => placement.place(Float32Array.from(z)));
const moved = input.drags.map(([z, x, y]) => Array.from(placement.moveInPlane(Float32Array.from(z), x, y)));
console.log(JSON.stringify({ placed, moved }));
