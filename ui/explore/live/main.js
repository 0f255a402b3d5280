// Python mounts this one component several times on the Explore page, each mount a part of one live instrument:
// "panel" (sliders, image, traversal strip), "map" (the projection) and "pad" (drawing to encode). Every mount gets a
// bundle (explorer.js parseBundle): its view, and any assets this tab does not hold yet. The parts of a page share
// its Explorer (the current z). window.__vaeExplore exposes the runtime and the timings to tests and benchmarks.

// "server": an image decoded on the server (Server decoding), from its own view or from a server slider's relay
class ServerImage {
  constructor(root, explorer) {
    this.root = root;
    this.canvas = element("canvas", "vx-canvas");
    const box = element("div", "vx-image");
    box.append(this.canvas, element("div", "vx-note", "decoded on the server"));
    root.append(box);
    this.drawn = 0;
    explorer.listen(this);
  }

  update(view) {
    this.scale = view.scale;
    this.onServerImage(view.image);
  }

  onServerImage(image) {
    if (!image) return;
    const [, h, w] = image.shape, bin = atob(image.pixels), pixels = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) pixels[i] = bin.charCodeAt(i);
    sizeCanvas(this.canvas, w * this.scale, h * this.scale);
    drawImage(this.canvas, pixels, image.shape);
    this.drawn += 1;
    this.root.dataset.drawn = String(this.drawn);
  }
}

const PARTS = { panel: Panel, map: MapView, pad: Pad, grid: GridPart, server: ServerImage, attribute: AttributePart,
  compare: ComparePart };

export default function explore(component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement.querySelector(".vx-root");
  if (!root || !data) return;
  let view;
  try {
    view = parseBundle(data instanceof Uint8Array ? data : new Uint8Array(data));
  } catch (err) {
    root.textContent = `The live view could not read its data: ${err.message}`;
    return;
  }
  const explorer = explorerFor(view.group);
  if (!root.__vx || root.__vx.role !== view.role) {
    root.replaceChildren();
    root.__vx = new PARTS[view.role](root, explorer);
    root.__vx.role = view.role;
    root.dataset.role = view.role;
  }
  const part = root.__vx;
  part.viewVersion = view.z_version; // the z this part's own fragment drew it with
  explorer.fromPython(view.z, view.z_version);
  explorer.parts[view.role] = part;
  const assets = {};
  for (const [name, hash] of Object.entries(view.assets)) {
    assets[name] = assetFor(hash, () => explore(component), (hashes) => setTriggerValue("need", { hashes }));
  }
  if (Object.values(assets).some((a) => !a)) {
    root.dataset.state = "waiting";
    return;
  }
  if (assets.model && assets.encoder) assets.model.encoder = assets.encoder; // the pad's mount: the encoder's weights
  const model = assets.model ? modelOf(assets.model) : null; // the map works without one (a model kept on the server)
  if (model) explorer.model = model;
  if (view.role === "map") part.update(view, assets.map, assets.colour, model, setTriggerValue);
  else part.update(view, model, setTriggerValue, assets);
  root.dataset.state = "ready";
  if (model) root.dataset.kernel = model.kernel;
}

// ------------------------------------------------------------------ hooks for tests and benchmarks

function explorerNamed(group = "explore") {
  const explorer = EXPLORERS.get(group);
  if (!explorer || !explorer.model) throw new Error(`no live view of ${group} with a model yet`);
  return explorer;
}

const rows = (flat, n) => Array.from({ length: n }, (_, i) => Array.from(flat.subarray((i * flat.length) / n, ((i + 1) * flat.length) / n)));

window.__vaeExplore = {
  // decode z's (arrays of numbers) with the page's model, by the WebAssembly kernel ("auto") or plain JS ("js")
  decode(zs, kernel = "auto", group) {
    const explorer = explorerNamed(group), entry = [...ASSETS.values()].find((a) => a["model:auto"] === explorer.model);
    const model = kernel === "auto" ? explorer.model : modelOf(entry, kernel);
    return { kernel: model.kernel, images: rows(model.decode(Float32Array.from(zs.flat()), zs.length), zs.length) };
  },
  encode(xs, kernel = "auto", group) {
    const explorer = explorerNamed(group), entry = [...ASSETS.values()].find((a) => a["model:auto"] === explorer.model);
    const model = kernel === "auto" ? explorer.model : modelOf(entry, kernel);
    const { mu, logvar } = model.encode(Float32Array.from(xs.flat()), xs.length);
    return { kernel: model.kernel, mu: rows(mu, xs.length), logvar: rows(logvar, xs.length) };
  },
  z: (group) => Array.from(explorerNamed(group).z),
  // a z the server moved and the image it decoded there, from the relay component (relay.js)
  fromPython(group, z, version, image) {
    const explorer = explorerFor(group);
    explorer.fromPython(z, version);
    if (image) explorer.notify((listener) => listener.onServerImage?.(image));
  },
  timing(group = "explore") {
    const t = EXPLORERS.get(group)?.timing || {};
    return Object.fromEntries(Object.entries(t).map(([name, timing]) => [name, timing.summary()]));
  },
  reset(group = "explore") {
    for (const timing of Object.values(EXPLORERS.get(group)?.timing || {})) timing.reset();
  },
  // drop every asset this tab holds, as the asset budget drops the least recently used: the parts must ask again
  forget() {
    ASSETS.clear();
  },
  star(group) {
    const map = explorerNamed(group).parts.map;
    return map && map.star ? { data: [map.star.x, map.star.y], ...map.clientOf(map.star.x, map.star.y) } : null;
  },
  pad(group) {
    const pad = explorerNamed(group).parts.pad;
    return pad && pad.pixels ? { pixels: Array.from(pad.pixels), mu: pad.mu ? Array.from(pad.mu) : null } : null;
  },
  pointOnScreen: (row, group) => explorerNamed(group).parts.map?.rowOnScreen(row) ?? null,
  ellipses: (group) => explorerNamed(group).parts.map?.ellipses ?? null, // as the map draws them
  dataToScreen(x, y, group) { return explorerNamed(group).parts.map.clientOf(x, y); },
};
