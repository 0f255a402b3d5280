"""Pictures of what the decoder makes, as files: image grids (nearest-neighbour upscaled, grayscale or RGB), PNG, and
animated GIF (Pillow) of traversals, interpolations and a run's reconstructions epoch by epoch.

Every frame is built from decoded images by `grid`, so a downloaded file holds the decoder's output (rounded to 8
bits; GIF's 256-colour palette also quantises RGB frames, grayscale ones stay exact). Each animation frame carries a
strip along its bottom edge that marks its position in the sequence, which also keeps consecutive frames distinct
(GIF encoders merge identical ones, and a collapsed dimension's traversal would otherwise shrink to one frame).
"""
from __future__ import annotations

import io

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


RECON_FRAMES = 64  # epochs whose reconstructions a run keeps (thinned evenly beyond)
RECON_FRAME_VALUES = 8192  # 8-bit values per kept epoch: up to 8 images, fewer when they are large
STRIP_PX = 3  # the position strip under each animation frame
FRAME_MS = 120  # time each GIF frame is shown


def png_bytes(pixels: np.ndarray) -> bytes:
    """A uint8 (H, W) or (H, W, 3) array as a PNG file."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def with_position(frame: np.ndarray, i: int, n: int) -> np.ndarray:
    """frame with a strip below it, dark from the left edge up to frame i's position among n (i in 0..n-1)."""
    h, w = frame.shape[:2]
    strip = np.full((STRIP_PX, w) + frame.shape[2:], 255, np.uint8)
    strip[:, :1 + round(i / max(1, n - 1) * (w - 1))] = 64
    return np.concatenate([frame, strip])


def gif_bytes(frames: list[np.ndarray], frame_ms: int = FRAME_MS) -> bytes:
    """uint8 frames of one size, (H, W) or (H, W, 3), as a looping GIF with a position strip under each frame."""
    from PIL import Image

    if not frames:
        raise ValueError("a GIF needs at least one frame")
    if len({f.shape for f in frames}) != 1:
        raise ValueError(f"GIF frames must share one size, got {sorted({f.shape for f in frames})}")
    pictures = [Image.fromarray(with_position(f, i, len(frames))) for i, f in enumerate(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=True, append_images=pictures[1:], duration=frame_ms, loop=0)
    return buffer.getvalue()


def ping_pong(n: int) -> list[int]:
    """0, 1, ..., n-1, n-2, ..., 1: a sweep there and back, so the loop has no jump."""
    return list(range(n)) + list(range(n - 2, 0, -1))


def sweep_frames(images: np.ndarray, scale: int | None = None, ncols: int | None = None) -> list[np.ndarray]:
    """Frames of rows swept together: images (R, S, C, H, W) -> 2S-2 frames (there and back), frame t the grid of
    images[:, t] (one tile per row: a traversed dimension, or an interpolation path)."""
    rows, steps = images.shape[:2]
    return [grid(images[:, t], ncols or rows, scale=scale) for t in ping_pong(steps)]


def sequence_frames(images: np.ndarray, scale: int | None = None, ncols: int | None = None) -> list[np.ndarray]:
    """Frames in order, no return: images (T, N, C, H, W) -> T frames, frame t the grid of images[t] (one row
    unless ncols is given)."""
    return [grid(images[t], ncols or images.shape[1], scale=scale) for t in range(len(images))]


def recon_frame_images(input_shape: tuple[int, int, int], n_val: int) -> int:
    """How many validation images a run keeps the reconstructions of at each epoch (0: too large to keep)."""
    return max(0, min(8, n_val, RECON_FRAME_VALUES // int(np.prod(input_shape))))


def epoch_reconstructions(epochs: list[dict], input_shape: tuple[int, int, int]) -> tuple[list[int], np.ndarray]:
    """The epochs that kept reconstructions and those images as floats in [0, 1]: ([e...], (T, N, C, H, W))."""
    rows = [r for r in epochs if r.get("val_recon_frame")]
    size = int(np.prod(input_shape))
    if not rows or any(len(r["val_recon_frame"]) % size for r in rows):
        return [], np.zeros((0, 0, *input_shape), np.float32)
    n = min(len(r["val_recon_frame"]) // size for r in rows)
    images = np.array([r["val_recon_frame"][:n * size] for r in rows], np.float32) / 255
    return [int(r["epoch"]) for r in rows], images.reshape(len(rows), n, *input_shape)
