"""Explore on more images than its first block, through AppTest, with the server's encoding worker held until the test
lets it go: the page draws at once from the first block (the map's points, the caption saying which figures are
estimates, a progress bar, the views held back); once the worker has encoded the rest, the page has every code (the
map's positions torch's PCA of every image's code); and a new server process (the pool reset) reads the kept codes."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from harness.wait import wait_until
from ui.explore.live import parse_bundle
from ui.explore.views import SHOWN as VIEWS_SHOWN
from ui.server import encodings
from vae_core.config import ModelConfig, RunConfig
from vae_core.data import load_source
from vae_core.encoding import EncodingPool, encoding_order, first_block_size
from vae_core.jobs import build_model
from vae_core.latent import encode
from vae_core.projections import Projection
from vae_core.runs import save_run
from vae_core.runs.codes_cache import CODES_FOLDER

ROOT = Path(__file__).resolve().parent.parent
N, SIDE = 3000, 12  # 12x12 shapes: not the active digits' shape, so the run's own data is explored
SOURCE = {"kind": "shapes", "n": N, "size": SIDE, "seed": 0}


@pytest.fixture
def held_worker(monkeypatch, tmp_path):
    """A fresh pool whose worker waits for release.set() before encoding the rest; a runs folder of this test's own."""
    release = threading.Event()
    work = EncodingPool._work

    def held(self):
        release.wait(120)
        work(self)

    monkeypatch.setattr(EncodingPool, "_work", held)
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_THREADS", "1")
    encodings.reset()
    yield release
    release.set()
    encodings.reset()


def open_explore(run: Path) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["active_run"] = str(run)
    at.session_state[VIEWS_SHOWN] = True  # scrolled down: the views would be drawn if every code were in
    at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    return at


def drawn_map(at: AppTest):
    for element in at.main:
        if element.type == "bidi_component" and element.proto.component_name == "vae_explore":
            view, assets = parse_bundle(element.proto.bytes)
            if view["role"] == "map":
                return assets[view["assets"]["map"]]
    raise AssertionError("no map on the page")


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_the_page_opens_with_the_first_block_and_fills_in_when_the_rest_is_encoded(held_worker, tmp_path):
    config = ModelConfig(input_shape=(1, SIDE, SIDE), latent_dim=3, hidden_sizes=(16,))
    model = build_model(config, seed=0).eval()
    run = save_run(tmp_path / "runs" / "shapes-3k", model, RunConfig(model=config, dataset={**SOURCE, "name": "s"}))
    first = first_block_size(N, SIDE * SIDE)
    assert first < N

    at = open_explore(run)
    text = captions(at)
    assert f"{first:,} of {N:,} images encoded" in text and "the rest encoding in the background" in text
    assert "are from these" in text and "wait for all of them" in text
    assert at.get("progress"), "a progress bar while the rest is encoded"
    assert not at.tabs and not any("Nearest" in m.value for m in at.markdown), "views wait for every code"
    map_ = drawn_map(at)
    np.testing.assert_array_equal(np.sort(map_.arrays["rows"]), np.sort(encoding_order(N)[:first]))
    assert f"{first:,} of {N:,} images drawn (the {first:,} encoded so far" in captions(at)

    held_worker.set()
    wait_until(lambda: list((run / CODES_FOLDER).glob("*.safetensors")), timeout=120, what="every code kept")
    at.run()
    assert not at.exception, at.exception
    assert f"{N:,} images encoded in" in captions(at) and not at.get("progress")
    assert at.tabs and any("Nearest" in m.value for m in at.markdown)
    map_ = drawn_map(at)
    assert len(map_.arrays["rows"]) == N
    mu = encode(model, load_source(SOURCE))[1]  # torch's codes of every image; PCA of them, as the map's
    xy = Projection("pca").fit(mu).transform(mu)
    np.testing.assert_allclose(map_.arrays["xy"].reshape(-1, 2), xy[map_.arrays["rows"]], atol=1e-4)

    encodings.reset()  # a new server process: nothing in memory, the codes on disk
    st.cache_data.clear()
    st.cache_resource.clear()
    again = open_explore(run)
    assert f"{N:,} codes read from the cache kept with the run" in captions(again)
    assert len(drawn_map(again).arrays["rows"]) == N and not again.get("progress")


def test_codes_of_a_run_with_a_kept_copy_are_named_by_the_copy_and_read_back_without_hashing_the_images(
        held_worker, tmp_path, monkeypatch):
    """A run keeps a copy of images read from files, named by the SHA-256 of its bytes (checked whenever it is read):
    that digest names its codes too, so a restarted server reads them without hashing the images again (the 123 MB
    of 10k 64x64 RGB images cost ~0.1-0.35 s of every restart's open)."""
    from ui.explore import data as explore_data
    from vae_core.data import FILES_KIND
    from vae_core.runs.kept_data import keep, kept_digest

    images = (np.random.default_rng(0).random((N, SIDE, SIDE)) * 255).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    kept = keep(load_source({"kind": FILES_KIND, "path": str(tmp_path / "images.npy")}), tmp_path / "runs")
    digest = kept_digest(kept.source)
    assert digest is not None
    config = ModelConfig(input_shape=(1, SIDE, SIDE), latent_dim=3, hidden_sizes=(16,))
    model = build_model(config, seed=0).eval()
    run = save_run(tmp_path / "runs" / "kept-3k", model, RunConfig(model=config, dataset={**kept.source, "name": "f"}))

    def no_hashing(images):
        raise AssertionError("the images were hashed although the run's kept copy names them")

    monkeypatch.setattr(explore_data, "data_hash", no_hashing)
    open_explore(run)
    held_worker.set()
    files = wait_until(lambda: list((run / CODES_FOLDER).glob("*.safetensors")), timeout=120, what="every code kept")
    assert [f.name.split("-")[1] for f in files] == [f"{digest}.safetensors"]

    encodings.reset()  # a new server process: nothing in memory, the codes on disk
    st.cache_data.clear()
    st.cache_resource.clear()
    again = open_explore(run)
    assert f"{N:,} codes read from the cache kept with the run" in captions(again)
    assert len(drawn_map(again).arrays["rows"]) == N
