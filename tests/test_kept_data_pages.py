"""The model keeps its data, as a user sees it: a model trained on an uploaded file is explored with the images it
was trained on from a new session of a restarted server, the upload itself gone (vae_core/runs/kept_data.py); a run
that kept none says why on Explore; Runs says what a run keeps."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from tests.test_sharing import session  # noqa: F401 (the fixture: an AppTest per named Streamlit session)
from ui import server
from ui.explore.latent import NEIGHBOURS
from ui.explore.views import SHOWN
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.model import VAE
from vae_core.runs import load_run, save_run
from vae_core.runs.kept_data import KEPT_KEY, NOTE_KEY

ROOT = Path(__file__).resolve().parent.parent
IMAGES = np.random.default_rng(0).integers(0, 256, (40, 12, 12), dtype=np.uint8)
LABELS = np.arange(40) % 4


def restart_server() -> None:
    """What a restarted server starts from: no registry (who uploaded and created what), no loaded datasets or
    runs, no cached latents."""
    for made_once in (server.registry, server.dataset_cache, server.run_cache):
        made_once.reset()
    st.cache_data.clear()
    st.cache_resource.clear()


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_a_model_trained_on_an_upload_is_explored_with_its_images_after_a_restart(session, tmp_path, monkeypatch):
    media = {}  # file id -> bytes of every image the pages send (AppTest's media storage is in memory)
    store = MemoryMediaFileStorage.load_and_get_id

    def record(self, data, mimetype, kind, filename=None):
        file_id = store(self, data, mimetype, kind, filename)
        media[file_id] = bytes(data)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    buf = io.BytesIO()
    np.savez(buf, x=IMAGES, y=LABELS)
    a = session("A", "pages/data.py")
    a.segmented_control(key="data_kind").set_value("upload").run()
    a.file_uploader(key="data_upload").set_value(("mine.npz", buf.getvalue(), "application/octet-stream")).run()
    upload = Path(a.session_state["dataset_source"]["path"])
    a.switch_page("pages/train.py").run()
    a.number_input(key="tf_epochs").set_value(1)
    a.number_input(key="tf_latent").set_value(2)
    a.button(key="train_start").click().run()
    assert not a.exception and not a.error, [e.value for e in a.error]
    job = a.session_state["job"]
    assert job.join(timeout=120) and job.state == "finished", job.progress().error

    restart_server()
    upload.unlink()  # and the upload is gone (pruned after a week, or another person's)
    b = session("B", "pages/explore.py")  # a new session: its active model is the newest run, its data the digits
    assert b.session_state["active_run"] == str(job.run_dir)
    assert not b.exception and not b.info, [i.value for i in b.info]
    assert "mine.npz, the data" in captions(b) and "(kept with the run)" in captions(b)
    assert "40 images encoded" in captions(b)

    b.session_state[SHOWN] = True  # scrolled to the nearest images
    b.run()
    source = load_run(job.run_dir).config.data_source
    assert KEPT_KEY in source and json.dumps(source, sort_keys=True) in server.dataset_cache()
    explored = server.dataset_cache().get(json.dumps(source, sort_keys=True), lambda: pytest.fail("not loaded"))
    np.testing.assert_array_equal(explored.batch(np.arange(40)), IMAGES[:, None] / np.float32(255))  # exactly
    tiles = b.image[0]  # the nearest images: the run's uploaded pixels, each with its uploaded label
    assert len(tiles.value) == NEIGHBOURS
    for url, caption in zip(tiles.value, tiles.captions):
        row = int(caption[1:].split(" · ")[0])
        assert caption == f"#{row} · {LABELS[row]}"
        png = Image.open(io.BytesIO(media[url.rsplit("/", 1)[1].split(".")[0]]))
        scale = png.height // 12
        np.testing.assert_array_equal(np.asarray(png.convert("L"))[::scale, ::scale], IMAGES[row])

    b.switch_page("pages/runs.py").run()
    assert "training data kept with the run" in captions(b)


def test_a_run_that_kept_no_data_says_so_on_explore(session, tmp_path):
    model = ModelConfig(input_shape=(1, 12, 12), latent_dim=2, hidden_sizes=(8,))
    note = "not kept: its images take 300.0 MB, over the 256 MB a run keeps (VAE_KEEP_DATA_BYTES)"
    source = {"kind": "path", "path": str(tmp_path / "gone.npz"), "labels_path": None, NOTE_KEY: note, "name": "big"}
    run = save_run(tmp_path / "runs" / "big", VAE(model), RunConfig(model, TrainConfig(), source))
    b = session("B", "pages/explore.py")
    assert b.session_state["active_run"] == str(run)
    said = " ".join(i.value for i in b.info)
    assert f"big expects 1×12×12 images and its training data is gone — train data {note}: upload it again" in said
    b.switch_page("pages/runs.py").run()
    assert f"training data {note}" in captions(b)
