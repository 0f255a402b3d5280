// The map's hover images: every original image, fetched from the server in blocks of dataset rows when a hovered
// point's block is missing, and kept in this tab by the dataset's key and the block's index (least recently used
// dropped beyond BLOCKS_BUDGET). Python's side: ui/explore/image_blocks.py (block_bytes: rows
// [b * rows, (b + 1) * rows) as uint8, C x H x W each, row after row; served under the URL the map's view names, for
// this session only).

const BLOCKS = new Map(); // `${key}/${block}` -> {pixels: Uint8Array, used}, or a pending Promise
const BLOCKS_BUDGET = 256 * 2 ** 20;

class ImageBlocks {
  // spec: the view's `images` ({url, rows, key, n, shape}) or null when the server cannot send them
  constructor(spec) {
    this.spec = spec;
    this.size = spec ? spec.shape[0] * spec.shape[1] * spec.shape[2] : 0;
  }

  // the pixels holding dataset row `row` and its offset in them, or null if its block is not here yet
  image(row) {
    if (!this.spec) return null;
    const block = Math.floor(row / this.spec.rows), entry = BLOCKS.get(`${this.spec.key}/${block}`);
    if (!entry || entry instanceof Promise) return null;
    entry.used = performance.now();
    return { pixels: entry.pixels, offset: (row - block * this.spec.rows) * this.size };
  }

  // fetch row's block (once, however often asked); resolves true when it is here, false if the server refused
  fetch(row) {
    if (!this.spec) return Promise.resolve(false);
    const block = Math.floor(row / this.spec.rows), name = `${this.spec.key}/${block}`, entry = BLOCKS.get(name);
    if (entry) return entry instanceof Promise ? entry : Promise.resolve(true);
    const pending = fetch(`${this.spec.url}${block}.bin`, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.arrayBuffer() : null))
      .then((buffer) => {
        const expected = (Math.min(this.spec.n, (block + 1) * this.spec.rows) - block * this.spec.rows) * this.size;
        if (!buffer || buffer.byteLength !== expected) {
          BLOCKS.delete(name);
          return false;
        }
        BLOCKS.set(name, { pixels: new Uint8Array(buffer), used: performance.now() });
        ImageBlocks.trim();
        return true;
      })
      .catch(() => { BLOCKS.delete(name); return false; });
    BLOCKS.set(name, pending);
    return pending;
  }

  static trim() {
    const held = [...BLOCKS.entries()].filter(([, e]) => !(e instanceof Promise));
    let total = held.reduce((sum, [, e]) => sum + e.pixels.byteLength, 0);
    held.sort((a, b) => a[1].used - b[1].used);
    while (total > BLOCKS_BUDGET && held.length > 1) {
      const [name, e] = held.shift();
      BLOCKS.delete(name);
      total -= e.pixels.byteLength;
    }
  }
}
