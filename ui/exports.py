"""Downloads of what the decoder makes: traversal grids, interpolations and samples as PNG, traversals and
interpolations as animated GIF (Explore), a run's reconstructions epoch by epoch as GIF (Train).

Each file is built by vae_core.media when the button is pressed (a deferred download: the page never pays for it),
from values captured when the button was drawn — the z, dimensions and paths the user sees."""
from __future__ import annotations

import numpy as np
import streamlit as st

from vae_core.latent import decode, manifold_grid, traversal_grid
from vae_core.media import (epoch_reconstructions, gif_bytes, grid, png_bytes, recon_frame_images, scale_for,
                            sequence_frames, sweep_frames)
from vae_core.model import VAE

TILE_PX = 56  # one image in a downloaded grid or animation
PNG, GIF = "image/png", "image/gif"


def _button(label: str, data, file_name: str, mime: str, key: str) -> None:
    st.download_button(label, data, file_name=file_name, mime=mime, key=key, on_click="ignore",
                       icon=":material/download:", width="stretch")


def traversal_downloads_ui(model: VAE, name: str, z: np.ndarray, dims: list[int], ranges: np.ndarray,
                           steps: int) -> None:
    """The traversal grid at z (one row per dimension) as PNG, and all rows sweeping together as GIF."""
    z, dims, ranges = np.array(z, np.float32), list(dims), np.array(ranges, np.float32)
    images = lambda: decode(model, traversal_grid(z, dims, ranges, steps))  # noqa: E731  (R, S, C, H, W)
    scale = scale_for(model.config.input_shape[1], TILE_PX)
    stem = f"{name}-traversals-z{'-'.join(map(str, dims))}"
    png, gif = st.columns(2)
    with png:
        _button("Traversals (PNG)", lambda: png_bytes(grid(images().reshape(-1, *model.config.input_shape), steps,
                                                           scale=scale)), f"{stem}.png", PNG, "explore_dl_traverse_png")
    with gif:
        _button("Traversals (GIF)", lambda: gif_bytes(sweep_frames(images(), scale=scale, ncols=min(len(dims), 8))),
                f"{stem}.gif", GIF, "explore_dl_traverse_gif")


def manifold_download_ui(model: VAE, name: str, z: np.ndarray, dims: tuple[int, int], ranges: np.ndarray,
                         steps: int) -> None:
    """The steps x steps manifold grid at z as one PNG (rows from high to low values of the second dimension)."""
    z, ranges = np.array(z, np.float32), np.array(ranges, np.float32)
    scale = scale_for(model.config.input_shape[1], TILE_PX // 2)
    images = lambda: decode(model, manifold_grid(z, dims, ranges, steps)).reshape(  # noqa: E731
        -1, *model.config.input_shape)
    _button("Manifold (PNG)", lambda: png_bytes(grid(images(), steps, scale=scale, pad=1)),
            f"{name}-manifold-z{dims[0]}-z{dims[1]}.png", PNG, "explore_dl_manifold_png")


def interpolation_downloads_ui(model: VAE, name: str, paths: dict[str, np.ndarray], a: int, b: int) -> None:
    """The interpolation paths as one PNG (a row each, in the order shown) and as a GIF sweeping them together."""
    stacked = np.stack([np.array(p, np.float32) for p in paths.values()])  # (P, S, D)
    scale = scale_for(model.config.input_shape[1], TILE_PX)
    stem = f"{name}-interpolation-{a}-{b}"
    png, gif = st.columns(2)
    with png:
        flat = lambda: decode(model, stacked).reshape(-1, *model.config.input_shape)  # noqa: E731  (P*S, C, H, W)
        _button("Interpolation (PNG)", lambda: png_bytes(grid(flat(), stacked.shape[1], scale=scale)), f"{stem}.png",
                PNG, "explore_dl_interp_png")
    with gif:
        _button("Interpolation (GIF)", lambda: gif_bytes(sweep_frames(decode(model, stacked), scale=scale)),
                f"{stem}.gif", GIF, "explore_dl_interp_gif")


def samples_download_ui(images: np.ndarray, ncols: int, file_name: str, label: str, key: str) -> None:
    """Decoded samples (N, C, H, W) as one PNG grid."""
    scale = scale_for(images.shape[-2], TILE_PX)
    _button(label, lambda: png_bytes(grid(images, ncols, scale=scale)), file_name, PNG, key)


def epoch_reconstructions_download_ui(epochs: list[dict], originals: np.ndarray | None, name: str) -> None:
    """The run's kept reconstructions, one GIF frame per epoch (the validation images above, when known)."""
    shape = tuple(originals.shape[1:]) if originals is not None else None
    if shape is None:
        return
    kept, images = epoch_reconstructions(epochs, shape)
    if not kept:
        if epochs and all(r.get("val_images") == 0 for r in epochs):
            why = "this run has no validation split, whose images they are"
        elif recon_frame_images(shape, len(originals)) == 0:
            why = f"images of {int(np.prod(shape)):,} values are too large to keep for every epoch"
        elif epochs:
            why = "this run was trained before runs kept them"
        else:
            why = "they appear once an epoch has ended"
        st.caption(f"Reconstructions per epoch (GIF): {why}.")
        return
    n = images.shape[1]

    def frames() -> bytes:
        above = np.repeat(originals[None, :n], len(images), axis=0)  # (T, n, C, H, W)
        both = np.concatenate([above, images], axis=1)  # originals in the top row, reconstructions below
        return gif_bytes(sequence_frames(both, scale=scale_for(shape[1], TILE_PX), ncols=n), frame_ms=300)

    _button(f"Reconstructions per epoch (GIF, {len(kept)} epochs)", frames, f"{name}-reconstructions.gif", GIF,
            "train_dl_recon_gif")

