"""Pictures as files: PNG and GIF bytes decoded back equal the decoder's output (8-bit), frame counts and sizes, the
reconstructions a run keeps per epoch against torch."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from vae_core.config import ModelConfig, TrainConfig
from vae_core.latent import decode, lerp, slerp, traversal_grid
from vae_core.media import (RECON_FRAMES, STRIP_PX, epoch_reconstructions, gif_bytes, grid, png_bytes, sequence_frames,
                            sweep_frames)
from vae_core.jobs import TrainingJob, build_model

GRAY = ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden_sizes=(16,))
RGB = ModelConfig(input_shape=(3, 8, 8), latent_dim=3, hidden_sizes=(16,), likelihood="gaussian")


def gif_frames(data: bytes) -> list[np.ndarray]:
    """Every frame of a GIF file as (H, W, 3) uint8 (a grayscale frame has R = G = B)."""
    return [np.array(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))]


def torch_8bit(model, z: np.ndarray) -> np.ndarray:
    """The reference: torch's decoder mean at z, as 8-bit pixels. (N, C, H, W) uint8."""
    with torch.no_grad():
        images = model.decode_mean(torch.as_tensor(z, dtype=torch.float32)).numpy()
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def tile(frame: np.ndarray, i: int, h: int, w: int, pad: int = 2) -> np.ndarray:
    """Tile i of a one-row grid frame (scale 1)."""
    return frame[:h, i * (w + pad): i * (w + pad) + w]


def test_png_holds_the_grid_exactly():
    model = build_model(GRAY, seed=0)
    z = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    pixels = grid(decode(model, z), 3, scale=2)
    back = np.array(Image.open(io.BytesIO(png_bytes(pixels))))
    np.testing.assert_array_equal(back, pixels)
    expected = torch_8bit(model, z)[:, 0]
    np.testing.assert_array_equal(back[:16:2, :16:2], expected[0])  # tile 0 upscaled x2, nearest neighbour


def test_a_traversal_gif_sweeps_there_and_back_and_holds_the_decoders_pixels():
    model = build_model(GRAY, seed=0)
    z, dims, steps = np.zeros(3, np.float32), [0, 2], 5
    ranges = np.array([[-2, 2]] * 3, np.float32)
    paths = traversal_grid(z, dims, ranges, steps)  # (2, 5, 3)
    frames = gif_frames(gif_bytes(sweep_frames(decode(model, paths), scale=1)))
    assert len(frames) == 2 * steps - 2  # 0..4 then 3..1
    assert frames[0].shape[:2] == (8 + STRIP_PX, 2 * 8 + 2)
    for frame, t in zip(frames, [0, 1, 2, 3, 4, 3, 2, 1]):
        for row in range(len(dims)):
            np.testing.assert_array_equal(tile(frame[..., 0], row, 8, 8), torch_8bit(model, paths[row, t:t + 1])[0, 0])
    strip = frames[2][8:, :, 0]
    marked = 1 + round(2 / 7 * 17)  # frame 2 of 8 (indices 0..7) on an 18-pixel-wide strip
    assert (strip[:, :marked] == 64).all() and (strip[:, marked:] == 255).all()


def test_an_interpolation_gif_of_rgb_frames_stays_close_to_the_decoder():
    """GIF's palette quantises RGB: each frame within a few levels of the decoder's output."""
    model = build_model(RGB, seed=1)
    rng = np.random.default_rng(1)
    za, zb = rng.normal(size=3), rng.normal(size=3)
    paths = np.stack([lerp(za, zb, 6), slerp(za, zb, 6)])
    frames = gif_frames(gif_bytes(sweep_frames(decode(model, paths), scale=1)))
    assert len(frames) == 10 and frames[0].shape == (8 + STRIP_PX, 18, 3)
    for frame, t in zip(frames, [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]):
        expected = torch_8bit(model, paths[1, t:t + 1])[0].transpose(1, 2, 0)
        assert np.abs(tile(frame, 1, 8, 8).astype(int) - expected).mean() < 4


def test_gif_refuses_no_frames_and_mixed_sizes():
    with pytest.raises(ValueError, match="at least one frame"):
        gif_bytes([])
    with pytest.raises(ValueError, match="one size"):
        gif_bytes([np.zeros((4, 4), np.uint8), np.zeros((5, 4), np.uint8)])


def test_a_run_keeps_each_epochs_reconstructions_as_torch_decodes_them(digits):
    job = TrainingJob(digits, GRAY, TrainConfig(epochs=3, batch_size=256, seed=0), threads=1).start()
    assert job.join(timeout=60)
    epochs, images = epoch_reconstructions(job.history()["epochs"], GRAY.input_shape)
    assert epochs == [1, 2, 3] and images.shape == (3, 8, 1, 8, 8)
    model = job.model_snapshot()
    with torch.no_grad():
        mu = model.encode(torch.from_numpy(digits.batch(job.val_idx[:8])))[0].numpy()
    np.testing.assert_array_equal((images[-1] * 255).round().astype(np.uint8), torch_8bit(model, mu))
    frames = gif_frames(gif_bytes(sequence_frames(images, scale=1)))
    assert len(frames) == 3 and frames[0].shape[:2] == (8 + STRIP_PX, 8 * 8 + 7 * 2)


def test_a_long_run_thins_its_kept_reconstructions_evenly():
    job = TrainingJob.__new__(TrainingJob)
    job._epochs = [{"epoch": e, "val_recon_frame": [e]} for e in range(1, RECON_FRAMES + 2)]
    job._thin_recon_frames()
    kept = [r["epoch"] for r in job._epochs if "val_recon_frame" in r]
    assert kept[0] == 1 and kept[-1] == RECON_FRAMES + 1 and len(kept) <= RECON_FRAMES
    assert len(job._epochs) == RECON_FRAMES + 1  # the epoch rows themselves all stay
