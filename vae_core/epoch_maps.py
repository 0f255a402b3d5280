"""The latent map epoch by epoch: a fixed subsample of the validation images (at most MAP_POINTS), their posterior
means μ at the end of each epoch and those codes' 2-D map, each epoch's map aligned to the one before so that points
move rather than jump (the projection family's align_to). A job keeps one frame per epoch in its epoch rows
("map_codes", "map_xy": flat lists), thinned like the reconstructions once the run outgrows MAP_FRAMES frames or
MAP_VALUES numbers; the Train and Runs pages draw them (ui/epoch_map_ui.py), and map_pictures turns them into the
frames of a GIF or a PNG sheet."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .projections import Projection, align_to, default_method

MAP_POINTS = 2000  # validation images on the map
MAP_FRAMES = 64  # epochs whose map a run keeps (thinned evenly beyond, first and last kept)
MAP_VALUES = 800_000  # numbers all kept frames may take in history.json (codes and positions)
CODE_DECIMALS = 4  # codes are kept (and projected) rounded: the saved codes give the saved map
XY_DECIMALS = 5  # positions are kept rounded (JSON's size): 1e-5 of a map a few units wide
PICTURE_PX = 320  # a map picture's side
POINT_PX = 3  # a point's side in a picture


def map_rows(val_idx: np.ndarray, seed: int) -> np.ndarray:
    """The dataset rows on the map: every validation row, or a seeded subsample of MAP_POINTS of them, sorted; none
    when there are fewer than two (a map needs two points)."""
    val_idx = np.asarray(val_idx)
    positions = map_positions(len(val_idx), seed)
    return val_idx if len(positions) == len(val_idx) else val_idx[positions]


def map_positions(n_val: int, seed: int) -> np.ndarray:
    """Where map_rows' rows sit among the n_val validation rows (sorted positions): the validation pass's codes at
    these positions are the map's codes, with no second encoding."""
    if n_val < 2:
        return np.arange(0)
    if n_val <= MAP_POINTS:
        return np.arange(n_val)
    return np.sort(np.random.default_rng(seed).choice(n_val, MAP_POINTS, replace=False))


def map_codes(mu: np.ndarray) -> np.ndarray:
    """The map's codes from posterior means μ (N, D): rounded to CODE_DECIMALS, (N, D) float64."""
    return np.round(np.asarray(mu, np.float32).astype(np.float64), CODE_DECIMALS)


def epoch_projection(codes: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """The codes' 2-D map at one epoch: latent axes for a 2-D latent space, PCA otherwise (default_method); a method
    whose plane is fixed only up to rotation and sign is aligned to previous, the same points' map at the epoch before
    (None: the first). (N, D) -> (N, 2) float64."""
    projection = Projection(default_method(np.shape(codes)[1])).fit(codes)
    xy = projection.embedding_.astype(np.float64)
    if projection.spec.aligned and previous is not None:
        xy = align_to(xy, previous)
    return xy


def map_frame(codes: np.ndarray, previous: np.ndarray | None) -> dict[str, list[float]]:
    """One epoch row's map fields: the codes and their aligned positions, as flat lists."""
    xy = np.round(epoch_projection(codes, previous), XY_DECIMALS)
    return {"map_codes": codes.ravel().tolist(), "map_xy": xy.ravel().tolist()}


def last_map(epochs: list[dict]) -> np.ndarray | None:
    """The positions (N, 2) of the last epoch row with a map, or None."""
    for row in reversed(epochs):
        if row.get("map_xy"):
            return np.asarray(row["map_xy"], np.float64).reshape(-1, 2)
    return None


def thin_map_frames(epochs: list[dict]) -> list[dict]:
    """epochs with at most max(2, min(MAP_FRAMES, MAP_VALUES / a frame's numbers)) maps kept: past that, every other
    one goes (first and last kept), as the reconstructions (jobs/core.py)."""
    kept = [i for i, r in enumerate(epochs) if "map_xy" in r]
    if not kept:
        return epochs
    row = epochs[kept[-1]]
    limit = max(2, min(MAP_FRAMES, MAP_VALUES // max(1, len(row["map_xy"]) + len(row.get("map_codes", ())))))
    if len(kept) <= limit:
        return epochs
    out = list(epochs)
    while len(kept) > limit:
        for i in kept[1:-1:2]:
            out[i] = {k: v for k, v in out[i].items() if k not in ("map_codes", "map_xy")}
        kept = [i for i, r in enumerate(out) if "map_xy" in r]
    return out


@dataclass(frozen=True)
class EpochMaps:
    """The maps a run kept: epochs (T,), codes (T, N, D), xy (T, N, 2)."""

    epochs: list[int]
    codes: np.ndarray
    xy: np.ndarray

    @property
    def method(self) -> str:
        return default_method(self.codes.shape[2])


def epoch_maps(epochs: list[dict]) -> EpochMaps | None:
    """The map frames in a history's epoch rows (the ones of one subsample size), or None if it kept none."""
    rows = [r for r in epochs if r.get("map_xy") and r.get("map_codes")]
    if not rows:
        return None
    n = len(rows[-1]["map_xy"]) // 2
    rows = [r for r in rows if len(r["map_xy"]) == 2 * n and len(r["map_codes"]) % n == 0]
    d = len(rows[-1]["map_codes"]) // n
    rows = [r for r in rows if len(r["map_codes"]) == n * d]
    return EpochMaps(epochs=[int(r["epoch"]) for r in rows],
                     codes=np.array([r["map_codes"] for r in rows], np.float64).reshape(len(rows), n, d),
                     xy=np.array([r["map_xy"] for r in rows], np.float64).reshape(len(rows), n, 2))


def map_pictures(maps: EpochMaps, labels: np.ndarray, palette: list[tuple[int, int, int]],
                 px: int = PICTURE_PX) -> list[np.ndarray]:
    """Each epoch's map as a uint8 (px, px, 3) picture, points coloured palette[label % len], on one scale for
    every frame (the bounding box of all of them) so that the sequence shows the points moving."""
    lo, hi = maps.xy.reshape(-1, 2).min(0), maps.xy.reshape(-1, 2).max(0)
    span = float((hi - lo).max()) or 1.0
    centre, margin = (lo + hi) / 2, POINT_PX + 2
    scale = (px - 2 * margin) / span
    colours = np.array(palette, np.uint8)[np.asarray(labels) % len(palette)]  # (N, 3)
    out = []
    for xy in maps.xy:
        picture = np.full((px, px, 3), 255, np.uint8)
        col = np.round(px / 2 + (xy[:, 0] - centre[0]) * scale).astype(int)
        row = np.round(px / 2 - (xy[:, 1] - centre[1]) * scale).astype(int)  # y grows upwards, as on the map
        for dy in range(POINT_PX):
            for dx in range(POINT_PX):
                picture[np.clip(row + dy - 1, 0, px - 1), np.clip(col + dx - 1, 0, px - 1)] = colours
        out.append(picture)
    return out
