// The map: latent codes projected to 2-D on a canvas, coloured by label / factor / error / KL, with the current z as
// a star that follows z while anything moves it (exact for a linear map: latent axes, PCA; for t-SNE and UMAP the same
// k-nearest-codes placement the server uses), hover to see an image beside its reconstruction (decoded here), click to
// go to an image's code, drag the star to move z in the map's plane, box / lasso selection, wheel zoom, pan, legend.
// MapView holds the state and follows Python and the explorer; its ideas live beside it: placement maths
// (map_place.js), the spatial index for hover and selection (map_index.js), drawing (map_draw.js), gestures
// (map_gestures.js), the hover images fetched in blocks (map_images.js). Reference maths:
// vae_core.projections.Projection (transform, _place) and vae_core.latent.nearest_neighbours.

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
    this.images = new ImageBlocks(null);
    explorer.timing.hoverImage ??= new Timing(); // pointer event -> the hovered point's original image shown
    explorer.timing.mapPan ??= new Timing(); // the interval between frames while the map is panned or zoomed
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

  // ------------------------------------------------------------------ data from Python (main.js)

  update(view, map, colour, model, setTrigger) {
    this.setTrigger = setTrigger;
    this.model = model;
    this.height = view.height;
    if (map !== this.map) this.loadMap(map);
    if (colour !== this.colour) this.loadColour(colour);
    const images = view.images ?? null; // where this session fetches the hover images (ui/explore/image_blocks.py)
    if (JSON.stringify(images) !== JSON.stringify(this.images.spec)) this.images = new ImageBlocks(images);
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
    this.placement = new Placement(map);
    this.grid = new PointGrid(xy, this.n); // hover, click and selection visit only the cells near the pointer
    this.frame = new Frame(xy, this.n); // every point in view
    this.hidden.clear();
    this.hover = null;
    this.root.dataset.points = String(this.n);
    this.root.dataset.total = String(map.meta.total ?? this.n);
    this.root.dataset.method = map.meta.method;
    this.toolbar.querySelector('[data-mode="pan"]').title = map.meta.draggable
      ? "drag the star to move z in this plane; drag elsewhere to pan; wheel to zoom; click a point to go to its code"
      : "drag to pan, wheel to zoom, click a point to go to its code";
  }

  resetView() {
    if (!this.map) return;
    this.frame.reset();
    this.resize(true);
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
    this.frame.fit(width, height, this.map.meta.equal_aspect);
    this.drawBase();
    this.drawOverlay();
  }

  // ------------------------------------------------------------------ z moved (explorer.js listeners)

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

  // client coordinates of a drawn row, and of the star (tests, benchmarks)
  clientOf(x, y) {
    const r = this.overlay.getBoundingClientRect(), [sx, sy] = this.frame.toScreen(x, y);
    return { x: r.left + sx, y: r.top + sy };
  }

  rowOnScreen(row) {
    const i = this.indexOf.get(row);
    if (i === undefined) return null;
    const { xy } = this.map.arrays;
    return this.clientOf(xy[2 * i], xy[2 * i + 1]);
  }
}

Object.assign(MapView.prototype, MapDrawing, MapGestures);
