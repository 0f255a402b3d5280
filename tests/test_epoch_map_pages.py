"""The latent map per epoch on the pages (AppTest): a finished job's map on Train and any run's on Runs, with its GIF
(one frame per kept epoch) and PNG sheet; a run that kept no maps says why; the pictures use the live map's palette."""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image, ImageSequence
from streamlit.testing.v1 import AppTest

from tests.test_app_pages import app, start_training, texts  # noqa: F401  (app: the AppTest factory fixture)
from ui.epoch_map_ui import HERE, map_colours, palette
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.data import load_digits
from vae_core.epoch_maps import epoch_maps, map_pictures
from vae_core.media import gif_bytes
from vae_core.model import VAE
from vae_core.runs import load_run, save_run


def download_keys(at: AppTest) -> set[str]:
    """The keys of the page's download buttons (AppTest has no accessor of its own for them)."""
    return {b.key for b in at.get("download_button")}


def gif_frame_count(data: bytes) -> int:
    return sum(1 for _ in ImageSequence.Iterator(Image.open(io.BytesIO(data))))


def test_the_pictures_use_the_live_maps_palette():
    source = (HERE / "map_draw.js").read_text()
    hexes = re.findall(r'"#([0-9A-F]{6})"', source.split("const PALETTE = [", 1)[1].split("];", 1)[0])
    assert len(palette()) == len(hexes) == 12
    assert palette()[0] == (0x4B, 0x6B, 0xFB)


def test_a_finished_job_shows_its_map_and_the_runs_page_replays_it(app, tmp_path):
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=3)
    assert job.join(timeout=120) and job.state == "finished"
    at.run()
    assert not at.exception
    assert "Latent map per epoch" in texts(at.markdown) and "aligned to the one before" in texts(at.markdown)
    run = load_run(job.run_dir)
    maps = epoch_maps(run.history["epochs"])
    assert maps.epochs == [1, 2, 3] and maps.xy.shape[1] == len(job.map_rows)
    assert {"train_epoch_map_gif", "train_epoch_map_png"} <= download_keys(at)

    runs = app("pages/runs.py")
    assert not runs.exception and "Latent map per epoch" in texts(runs.markdown)
    labels, names = map_colours(load_digits(), job.map_rows, maps.xy.shape[1])
    assert names == [str(c) for c in range(10)] and np.array_equal(labels, load_digits().labels[job.map_rows])
    frames = map_pictures(maps, labels, palette())
    assert len(frames) == 3 and gif_frame_count(gif_bytes(frames)) == 3
    assert {"runs_epoch_map_gif", "runs_epoch_map_png"} <= download_keys(runs)


def test_a_run_without_maps_says_why(app, tmp_path):
    config = ModelConfig(latent_dim=2, hidden_sizes=(8,))
    source = {"kind": "digits", "name": "digits"}
    save_run(tmp_path / "runs" / "old", VAE(config), RunConfig(config, TrainConfig(), source),
             history={"steps": [], "epochs": [{"epoch": 1, "step": 10, "val_images": 180}]})
    at = app("pages/runs.py")
    at.selectbox(key="runs_pick").set_value("old").run()
    assert not at.exception
    assert "trained before runs kept it" in texts(at.caption)
