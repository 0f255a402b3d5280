"""The latent map epoch by epoch, on Train (live while a job runs: the live fragment hands it each new epoch, no page
rerun) and on Runs (any run that kept maps): one small st.components.v2 component, ui/explore/live/epoch_map.js,
joined after the live view's map_place.js and map_draw.js whose frame and drawing it reuses; a scrubber over the
epochs once the job has ended; the sequence as a GIF and as a PNG sheet (vae_core.epoch_maps.map_pictures)."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import streamlit as st

from ui.exports import GIF, PNG
from vae_core.data import Dataset
from vae_core.epoch_maps import MAP_POINTS, EpochMaps, epoch_maps, map_pictures
from vae_core.media import gif_bytes, grid, png_bytes
from vae_core.projections import Projection

HERE = Path(__file__).resolve().parent / "explore" / "live"
JS_FILES = ("map_place.js", "map_draw.js", "epoch_map.js")  # in load order: Frame, the drawing, the component
MAP_HEIGHT = 360  # px
SHEET_PX, SHEET_COLUMNS = 200, 8  # a PNG sheet's frames and columns
CSS = """
.em-root { font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit); font-size: 0.85rem; }
.em-root[data-state]:empty::before { content: "loading the map…"; opacity: 0.6; }
.em-canvas { display: block; }
.em-bar { display: flex; gap: 0.5rem; align-items: center; margin-top: 0.3rem; }
.em-bar[hidden], .em-legend[hidden] { display: none; }
.em-scrubber { flex: 1; accent-color: var(--st-primary-color, #ff4b4b); }
.em-label { font-variant-numeric: tabular-nums; white-space: nowrap; }
.em-play {
  font: inherit; font-size: 0.8rem; padding: 0.15rem 0.6rem; border-radius: 0.4rem; cursor: pointer; color: inherit;
  border: 1px solid var(--st-border-color, #ccc); background: var(--st-background-color, #fff);
}
.em-legend { display: flex; flex-wrap: wrap; gap: 0.2rem 0.8rem; margin-top: 0.3rem; }
.em-legend-entry { display: inline-flex; gap: 0.3rem; align-items: center; font-size: 0.8rem; }
.em-swatch { width: 0.7rem; height: 0.7rem; border-radius: 50%; display: inline-block; }
"""


@functools.cache
def _component():
    js = "\n".join(f"// ---- {name}\n{(HERE / name).read_text(encoding='utf-8')}" for name in JS_FILES)
    return st.components.v2.component("vae_epoch_map", html='<div class="em-root" data-state="waiting"></div>',
                                      css=CSS, js=js)


@functools.cache
def palette() -> list[tuple[int, int, int]]:
    """The live map's categorical palette (map_draw.js PALETTE, its one place) as RGB triples, for the pictures."""
    source = (HERE / "map_draw.js").read_text(encoding="utf-8")
    block = re.search(r"const PALETTE = \[(.*?)\];", source, re.S).group(1)
    return [tuple(int(h[i:i + 2], 16) for i in (0, 2, 4)) for h in re.findall(r'"#([0-9A-Fa-f]{6})"', block)]


def map_colours(dataset: Dataset | None, rows: np.ndarray, n: int) -> tuple[np.ndarray, list[str]]:
    """The points' classes and the class names, as Explore colours by label; one class when the data has no labels
    (or is not the data the map was made of: n points, not len(rows))."""
    if dataset is None or dataset.labels is None or len(rows) != n or (len(rows) and rows.max() >= dataset.n):
        return np.zeros(n, np.int64), ["validation images"]
    labels = np.asarray(dataset.labels)
    names = dataset.class_names or [str(c) for c in range(int(labels.max()) + 1)]
    return labels[rows], list(names)


def epoch_map_ui(epochs: list[dict], dataset: Dataset | None, rows: np.ndarray, key: str, live: bool,
                 name: str) -> None:
    """The map of the validation subsample at each kept epoch: while live only the newest epoch is sent (the map
    follows it); after, every kept epoch, with the scrubber and the downloads."""
    maps = epoch_maps(epochs)
    if maps is None:
        if epochs and all(r.get("val_images") == 0 for r in epochs):
            st.caption("Latent map per epoch: this run has no validation split, whose images it maps.")
        elif epochs:
            st.caption("Latent map per epoch: this run was trained before runs kept it.")
        else:
            st.caption("The latent map appears when the first epoch ends.")
        return
    n = maps.xy.shape[1]
    labels, names = map_colours(dataset, np.asarray(rows), n)
    method = Projection(maps.method)
    shown = range(len(maps.epochs) - 1, len(maps.epochs)) if live else range(len(maps.epochs))
    data = {"key": key, "live": live, "height": MAP_HEIGHT, "names": names, "labels": labels.tolist(),
            "titles": list(method.axis_names()),
            "frames": [{"epoch": maps.epochs[t], "xy": maps.xy[t].ravel().tolist()} for t in shown]}
    st.markdown(f"**Latent map per epoch** — {n:,} validation images (at most {MAP_POINTS:,}), "
                f"{method.spec.label}" + (", each epoch aligned to the one before" if method.spec.aligned else ""))
    _component()(key=key, data=data)
    if not live:
        map_downloads_ui(maps, labels, name, key)


def map_downloads_ui(maps: EpochMaps, labels: np.ndarray, name: str, key: str) -> None:
    """The kept epochs' maps as a GIF (one frame each) and as one PNG sheet, built when pressed."""
    def sheet() -> bytes:
        pictures = np.stack(map_pictures(maps, labels, palette(), px=SHEET_PX)).transpose(0, 3, 1, 2) / 255.0
        return png_bytes(grid(pictures, min(SHEET_COLUMNS, len(pictures)), scale=1))

    gif, png = st.columns(2)
    gif.download_button(f"Latent map per epoch (GIF, {len(maps.epochs)} epochs)",
                        lambda: gif_bytes(map_pictures(maps, labels, palette()), frame_ms=250),
                        file_name=f"{name}-latent-map.gif", mime=GIF, key=f"{key}_gif", on_click="ignore",
                        icon=":material/download:", width="stretch")
    png.download_button("Latent map per epoch (PNG sheet)", sheet, file_name=f"{name}-latent-map.png", mime=PNG,
                        key=f"{key}_png", on_click="ignore", icon=":material/download:", width="stretch")
