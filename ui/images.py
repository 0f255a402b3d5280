"""Images at a readable size: nearest-neighbour upscaling and grids, for grayscale and RGB alike."""
from __future__ import annotations

import numpy as np

TARGET_PX = 112  # an 8x8 digit becomes 112x112 (x14), a 28x28 one 112x112 (x4), 32x32 128x128


def scale_for(height: int, target: int = TARGET_PX) -> int:
    """Integer nearest-neighbour factor that brings an image of this height near target pixels."""
    return max(1, round(target / max(1, height)))


def to_uint8(image: np.ndarray, scale: int | None = None) -> np.ndarray:
    """One (C, H, W) float image in [0, 1] -> (H*s, W*s) or (H*s, W*s, 3) uint8, upscaled without blurring."""
    image = np.asarray(image, dtype=np.float32)
    s = scale or scale_for(image.shape[-2])
    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else np.transpose(pixels[:3], (1, 2, 0))
    return np.repeat(np.repeat(pixels, s, axis=0), s, axis=1)


def grid(images: np.ndarray, ncols: int, scale: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """(N, C, H, W) floats -> one uint8 mosaic with ncols columns and pad pixels between tiles."""
    images = np.asarray(images, dtype=np.float32)
    n, c, h, w = images.shape
    s = scale or scale_for(h)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    th, tw = h * s, w * s
    shape = (nrows * th + (nrows - 1) * pad, ncols * tw + (ncols - 1) * pad) + (() if c == 1 else (3,))
    out = np.full(shape, pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        out[r * (th + pad): r * (th + pad) + th, col * (tw + pad): col * (tw + pad) + tw] = to_uint8(images[i], s)
    return out
