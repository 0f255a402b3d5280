// The latent map epoch by epoch (Train while a job runs, Train and Runs after): a component of its own, joined after
// map_place.js (Frame, MARGIN) and map_draw.js (PALETTE, MapDrawing.drawAxes), whose drawing it reuses. It
// draws one epoch's positions of the validation subsample, coloured by class as on Explore, on one frame for every
// epoch it holds (so the points move, the axes stay); a scrubber picks the epoch, Play steps through them. While a
// job runs Python sends only the newest epoch and the map follows it (the frame only ever grows). Reference: the
// positions are vae_core.epoch_maps.epoch_projection's, saved in the run's epoch rows (drawn as they are).
// window.__vaeEpochMap[key] holds the test hooks (epoch shown, points' client positions, show epoch k).

const EM_POINT_PX = 5;

function emDisc(colour, px) {
  // one point as a small canvas, drawn at each position (at most 2,000 points: no need for the map's ImageData path)
  const c = document.createElement("canvas");
  const size = px + 4;
  Object.assign(c, { width: size, height: size });
  const ctx = c.getContext("2d");
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, px / 2, 0, 2 * Math.PI);
  ctx.globalAlpha = 0.8;
  ctx.fillStyle = colour;
  ctx.fill();
  return c;
}

function emElement(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

class EpochMap {
  constructor(root) {
    this.root = root;
    this.canvas = emElement("canvas", "em-canvas");
    this.bar = emElement("div", "em-bar");
    this.play = emElement("button", "em-play", "Play");
    this.play.type = "button";
    this.scrubber = emElement("input", "em-scrubber");
    Object.assign(this.scrubber, { type: "range", min: "0", max: "0", step: "1", value: "0" });
    this.label = emElement("span", "em-label");
    this.bar.append(this.play, this.scrubber, this.label);
    this.legend = emElement("div", "em-legend");
    root.append(this.canvas, this.bar, this.legend);
    this.scrubber.addEventListener("input", () => this.show(Number(this.scrubber.value)));
    this.play.addEventListener("click", () => this.toggle());
    this.bounds = null; // [x0, x1, y0, y1] over every epoch drawn so far
    this.resizer = new ResizeObserver(() => this.draw());
    this.resizer.observe(root);
  }

  update(data) {
    const same = this.data && this.data.live === data.live && this.data.frames.length === data.frames.length
      && this.data.frames.at(-1)?.epoch === data.frames.at(-1)?.epoch;
    if (same) return; // the live fragment's rerun without a new epoch
    const follow = data.live || !this.data || this.index === this.data.frames.length - 1;
    this.data = data;
    this.height = data.height || 360;
    if (!this.sprites || this.names !== data.names.join("\u0000")) this.loadColours(data.names);
    this.growBounds(data.frames);
    this.bar.hidden = data.live || data.frames.length < 2;
    this.scrubber.max = String(Math.max(0, data.frames.length - 1));
    const index = follow ? data.frames.length - 1 : Math.min(this.index ?? 0, data.frames.length - 1);
    this.show(index);
  }

  loadColours(names) {
    this.names = names.join("\u0000");
    this.sprites = names.map((_, c) => emDisc(PALETTE[c % PALETTE.length], EM_POINT_PX));
    this.legend.replaceChildren(...names.map((name, c) => {
      const entry = emElement("span", "em-legend-entry");
      const swatch = emElement("span", "em-swatch");
      swatch.style.background = PALETTE[c % PALETTE.length];
      entry.append(swatch, emElement("span", "", name));
      return entry;
    }));
    this.legend.hidden = names.length < 2;
  }

  // the frame's data box: every epoch's points, padded by 5% (Frame's own rule); it only grows while a job runs
  growBounds(frames) {
    let [x0, x1, y0, y1] = this.data.live && this.bounds ? this.boundsData : [Infinity, -Infinity, Infinity, -Infinity];
    for (const { xy } of frames) {
      for (let i = 0; i < xy.length; i += 2) {
        x0 = Math.min(x0, xy[i]); x1 = Math.max(x1, xy[i]);
        y0 = Math.min(y0, xy[i + 1]); y1 = Math.max(y1, xy[i + 1]);
      }
    }
    this.boundsData = [x0, x1, y0, y1];
    this.frame = new Frame(Float32Array.of(x0, y0, x1, y1), 2);
    this.bounds = this.frame.bounds;
  }

  show(index) {
    this.index = index;
    this.scrubber.value = String(index);
    const epoch = this.data.frames[index].epoch, total = this.data.frames.length;
    this.label.textContent = this.data.live ? `epoch ${epoch} (live)` : `epoch ${epoch} · ${index + 1} of ${total}`;
    this.draw();
  }

  toggle() {
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = null;
      this.play.textContent = "Play";
      return;
    }
    if (this.index === this.data.frames.length - 1) this.show(0);
    this.play.textContent = "Pause";
    this.timer = setInterval(() => {
      if (this.index >= this.data.frames.length - 1) this.toggle();
      else this.show(this.index + 1);
    }, 250);
  }

  draw() {
    if (!this.data) return;
    const width = Math.max(200, Math.floor(this.root.clientWidth)), height = this.height;
    const dpr = window.devicePixelRatio || 1;
    Object.assign(this.canvas, { width: Math.round(width * dpr), height: Math.round(height * dpr) });
    Object.assign(this.canvas.style, { width: `${width}px`, height: `${height}px` });
    this.cssWidth = width;
    this.cssHeight = height;
    this.frame.reset();
    this.frame.fit(width, height, true); // exact maps (latent axes, PCA): one scale for both axes
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const { xy, epoch } = this.data.frames[this.index], labels = this.data.labels, half = this.sprites[0].width / 2;
    MapDrawing.drawAxes.call(this, ctx, { x_title: this.data.titles[0], y_title: this.data.titles[1] });
    this.drawn = new Float32Array(xy.length); // each point's screen position as drawn (the tests read them)
    for (let i = 0; 2 * i < xy.length; i++) {
      const [sx, sy] = this.frame.toScreen(xy[2 * i], xy[2 * i + 1]);
      this.drawn[2 * i] = sx;
      this.drawn[2 * i + 1] = sy;
      ctx.drawImage(this.sprites[labels[i] % this.sprites.length], sx - half, sy - half);
    }
    Object.assign(this.root.dataset, { epoch: String(epoch), points: String(xy.length / 2), state: "ready" });
  }

  // for the tests: the epoch shown and every point's position in data coordinates, read back from the screen
  // positions it was drawn at
  drawnPoints() {
    const xy = [];
    for (let i = 0; i < this.drawn.length; i += 2) xy.push(this.frame.toData(this.drawn[i], this.drawn[i + 1]));
    return { epoch: this.data.frames[this.index].epoch, epochs: this.data.frames.map((f) => f.epoch), xy };
  }
}

export default function epochMap(component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector(".em-root");
  if (!root || !data) return;
  if (!root.__em) root.__em = new EpochMap(root);
  root.__em.update(data);
  const hooks = (window.__vaeEpochMap = window.__vaeEpochMap || {});
  hooks[data.key] = { drawn: () => root.__em.drawnPoints(), show: (k) => root.__em.show(k) };
}
