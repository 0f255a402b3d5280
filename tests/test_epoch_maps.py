"""The latent map epoch by epoch: the alignment against scipy's orthogonal Procrustes and a rotated, sign-flipped copy
mapped back exactly; a job's per-epoch maps equal the engine's aligned projection of its saved codes (μ as torch
encodes the subsample); latent axes for a 2-D latent; the cap thins maps evenly; the pictures put each point where the
map says, in its class's colour."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from vae_core.config import ModelConfig, TrainConfig
from vae_core.epoch_maps import (CODE_DECIMALS, MAP_FRAMES, MAP_POINTS, MAP_VALUES, PICTURE_PX, EpochMaps, epoch_maps,
                                 epoch_projection, map_pictures, map_rows, thin_map_frames)
from vae_core.jobs import ProcessJob, TrainingJob
from vae_core.jobs.progress import Progress
from vae_core.jobs.protocol import Update
from vae_core.projections import METHODS, Projection, align_to
from vae_core.runs import load_run

MLP = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(16,))


def test_alignment_is_scipys_orthogonal_procrustes():
    rng = np.random.default_rng(0)
    xy, previous = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    r, _ = orthogonal_procrustes(xy, previous)
    np.testing.assert_allclose(align_to(xy, previous), xy @ r, atol=1e-12)


@pytest.mark.parametrize("turn", [0.0, 0.7, np.pi / 2, 2.5])
@pytest.mark.parametrize("flip", [(1, 1), (-1, 1), (1, -1), (-1, -1)])
def test_a_rotated_and_sign_flipped_copy_maps_back_exactly(turn, flip):
    previous = np.random.default_rng(1).normal(size=(40, 2))
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    copy = (previous * np.array(flip)) @ rotation
    np.testing.assert_allclose(align_to(copy, previous), previous, atol=1e-12)


def test_a_new_pca_fit_is_aligned_but_latent_axes_are_not():
    assert METHODS["pca"].aligned and not METHODS["identity"].aligned
    codes = np.random.default_rng(2).normal(size=(300, 5)) * [3, 2, 1, 0.5, 0.1]
    pca = Projection("pca").fit(codes).embedding_.astype(np.float64)
    flipped = -pca  # what a refit with the other signs would give
    np.testing.assert_allclose(epoch_projection(codes, flipped), flipped, atol=1e-5)
    planar = codes[:, :2]
    np.testing.assert_allclose(epoch_projection(planar, -planar), planar, atol=1e-6)  # the axes are the axes


def test_the_subsample_is_every_validation_image_or_a_seeded_sorted_two_thousand():
    small = np.arange(0, 300, 3)
    assert map_rows(small, seed=0) is small
    assert len(map_rows(np.array([7]), seed=0)) == 0  # one validation image: no map (a job then keeps none)
    val = np.arange(10_000) * 2
    rows = map_rows(val, seed=3)
    assert len(rows) == MAP_POINTS and np.all(np.diff(rows) > 0) and set(rows) <= set(val)
    np.testing.assert_array_equal(rows, map_rows(val, seed=3))


def test_each_epochs_map_is_the_aligned_projection_of_the_codes_it_saved(digits, tmp_path):
    job = TrainingJob(digits, MLP, TrainConfig(epochs=3, batch_size=128, seed=0), run_dir=tmp_path / "run",
                      threads=1).start()
    assert job.join(timeout=120) and job.state == "finished"
    maps = epoch_maps(load_run(tmp_path / "run").history["epochs"])
    assert maps.epochs == [1, 2, 3] and maps.codes.shape == (3, len(job.val_idx), 4)
    with torch.no_grad():  # the last codes: torch's μ of the subsample under the final weights
        mu = job.model_snapshot().encode(torch.from_numpy(digits.batch(job.map_rows)))[0].numpy()
    np.testing.assert_allclose(maps.codes[-1], mu, atol=10 ** -CODE_DECIMALS)
    previous = None
    for codes, xy in zip(maps.codes, maps.xy):
        np.testing.assert_allclose(xy, epoch_projection(codes, previous), atol=1e-5)
        previous = xy
    # aligned: the next map's points move less than the unaligned PCA would move them
    moved = np.linalg.norm(maps.xy[2] - maps.xy[1], axis=1).mean()
    unaligned = Projection("pca").fit(maps.codes[2]).embedding_
    assert moved <= np.linalg.norm(unaligned - maps.xy[1], axis=1).mean() + 1e-6


def test_a_two_dimensional_latent_is_drawn_on_its_axes(digits):
    config = ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_sizes=(16,))
    job = TrainingJob(digits, config, TrainConfig(epochs=2, batch_size=256, seed=0), threads=1).start()
    assert job.join(timeout=60)
    maps = epoch_maps(job.history()["epochs"])
    np.testing.assert_allclose(maps.xy, maps.codes, atol=1e-5)


def test_a_long_run_thins_its_maps_evenly_within_the_cap():
    frame = {"map_codes": [0.0] * 8, "map_xy": [0.0] * 4}
    epochs = [{"epoch": e, **frame} for e in range(1, MAP_FRAMES + 2)]
    kept = [r["epoch"] for r in thin_map_frames(epochs) if "map_xy" in r]
    assert kept[0] == 1 and kept[-1] == MAP_FRAMES + 1 and len(kept) <= MAP_FRAMES
    big = {"map_codes": [0.0] * (MAP_VALUES // 5), "map_xy": [0.0] * 10}  # 5 of these would pass MAP_VALUES
    thinned = thin_map_frames([{"epoch": e, **big} for e in range(1, 10)])
    assert len(thinned) == 9 and sum("map_xy" in r for r in thinned) <= 4


def test_the_pictures_put_each_point_where_the_map_says_in_its_colour():
    xy = np.array([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]])
    maps = EpochMaps(epochs=[1], codes=xy, xy=xy)
    palette = [(255, 0, 0), (0, 0, 255)]
    (picture,) = map_pictures(maps, np.array([0, 1, 0]), palette)
    assert picture.shape == (PICTURE_PX, PICTURE_PX, 3)
    centre = PICTURE_PX // 2
    assert tuple(picture[centre, centre]) == (255, 0, 0)
    red, blue = np.argwhere(np.all(picture == (255, 0, 0), -1)), np.argwhere(np.all(picture == (0, 0, 255), -1))
    assert red[:, 0].max() > centre + 50 and blue[:, 0].max() < centre - 50  # (-1, -1) low, (1, 1) high: y grows up


def test_the_servers_mirror_keeps_the_maps_the_worker_kept():
    """The worker thins its maps at each epoch end; the server's copy (ProcessJob, fed by Update messages of a few
    rows each) thins row by row alike, so the page and the saved run hold the same epochs' maps."""
    worker, mirror = TrainingJob.__new__(TrainingJob), ProcessJob.__new__(ProcessJob)
    worker._epochs = []
    mirror._lock, mirror._steps, mirror._stride, mirror._epochs = threading.Lock(), [], 1, []
    progress = Progress("running", 0, 1, 0, 1, 0.0, None)
    rows = [{"epoch": e, "map_codes": [float(e)] * 8, "map_xy": [float(e)] * 4} for e in range(1, 3 * MAP_FRAMES)]
    for start in range(0, len(rows), 3):  # three epochs per update
        sent = rows[start:start + 3]
        for row in sent:
            worker._epochs.append(row)
            worker._thin_map_frames()
        mirror._apply(Update(steps=[], epochs=sent, progress=progress, stride=1))
    assert mirror._epochs == worker._epochs
    assert sum("map_xy" in r for r in mirror._epochs) <= MAP_FRAMES
