"""The Explore page through AppTest: it renders for 2-, 8- and 32-D MLP models and a conv model, a latent slider
changes the decoded image, a selection maps to dataset rows through customdata and moves z, the live decoder gets
the weights once, and the page's state survives a page switch and comes back from the URL."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ui.explore_projection import selected_rows, selection_target
from ui.live_decoder import LOADED
from vae_core.config import ModelConfig, RunConfig
from vae_core.runs import save_run
from vae_core.training import build_model

ROOT = Path(__file__).resolve().parent.parent
EXPLORE = "app_pages/explore.py"


def make_run(root: Path, name: str, dataset: dict, **model) -> Path:
    """An untrained (seeded) model saved as a run: enough to draw every view."""
    config = ModelConfig(**model)
    return save_run(root / name, build_model(config, seed=0), RunConfig(model=config, dataset=dataset))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    digits = {"kind": "digits", "name": "digits"}
    return {
        "2d": make_run(root, "digits-2d", digits, latent_dim=2, hidden_sizes=(32,)),
        "8d": make_run(root, "digits-8d", digits, latent_dim=8, hidden_sizes=(32,)),
        "32d": make_run(root, "digits-32d", digits, latent_dim=32, hidden_sizes=(32,)),
        "conv": make_run(root, "shapes-conv", {"kind": "shapes", "n": 300, "size": 28, "name": "shapes"},
                         input_shape=(1, 28, 28), latent_dim=4, arch="conv", hidden_sizes=(32,)),
    }


@pytest.fixture
def explore(monkeypatch, runs):
    """Open Explore in a fresh AppTest with the given run active (and optional URL query parameters)."""
    monkeypatch.setenv("VAE_RUNS_DIR", str(next(iter(runs.values())).parent))
    monkeypatch.setenv("VAE_THREADS", "1")

    def open_(run: str, **query) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["active_run"] = str(runs[run])
        for name, value in query.items():
            at.query_params[name] = value
        at.switch_page(EXPLORE).run()
        assert not at.exception, at.exception
        return at

    return open_


def decoded_image(at: AppTest) -> str:
    """The server-decoded image's media URL (a hash of its PNG bytes)."""
    urls = [img.proto.imgs[0].url for img in at.get("image") if img.proto.imgs[0].caption == "decoded on the server"]
    assert len(urls) == 1
    return urls[0]


def live_data(at: AppTest) -> dict:
    (component,) = [e for e in at.main if e.type == "bidi_component"]
    proto = component.proto
    return json.loads(proto.json or proto.mixed.json)


def server_mode(at: AppTest) -> AppTest:
    at.button_group(key="w_explore_decoder_mode").set_value("Server").run()
    assert not at.exception
    return at


@pytest.mark.parametrize("run,dims", [("2d", 2), ("8d", 8), ("32d", 32), ("conv", 4)])
def test_explore_renders_every_view_without_exception(explore, run, dims):
    at = explore(run)
    assert at.title[0].value == "Explore the latent space"
    assert [e.type for e in at.main].count("plotly_chart") == 1
    assert len(at.query_params["z"].split(",")) == dims
    for tab in ("Manifold", "Interpolation", "Sampling", "Traversals"):
        at.session_state["w_explore_tab"] = tab
        at.run()
        assert not at.exception, (tab, at.exception)
    for colour in at.selectbox(key="w_explore_colour").options:  # label, factors (shapes), error, KL
        at.selectbox(key="w_explore_colour").set_value(colour).run()
        assert not at.exception, (colour, at.exception)


def test_tsne_places_z_approximately_and_says_so(explore):
    at = explore("conv")
    at.session_state["explore_tsne_points"] = 100  # a quick map: 100 of the 300 shapes, 250 iterations
    at.session_state["explore_tsne_iterations"] = 250
    at.selectbox(key="w_explore_method").set_value("tsne").run()
    assert not at.exception
    assert any("placed at the distance-weighted mean" in c.value and "subsample of 100" in c.value
               for c in at.caption)
    (chart,) = [e for e in at.main if e.type == "plotly_chart"]
    names = [trace.get("name", "") for trace in json.loads(chart.proto.spec)["data"]]
    assert "current z (≈, from its nearest codes)" in names and {"square", "ellipse", "triangle", "heart"} <= set(names)


def test_moving_a_latent_slider_changes_the_decoded_image(explore):
    at = server_mode(explore("8d"))
    before = decoded_image(at)
    top = slider_order(at)[0]  # the most informative dimension
    slider = at.slider(key=f"w_z{top}")
    slider.set_value(slider.max).run()
    assert not at.exception
    assert decoded_image(at) != before
    assert at.session_state["explore_z"][top] == pytest.approx(slider.max)
    assert at.query_params["z"].split(",")[top] == f"{slider.max:.4g}"


def slider_order(at: AppTest) -> list[int]:
    """The slider order the page chose (by KL, collapsed last), read from the sliders' labels."""
    return [int(s.key.removeprefix("w_z")) for s in at.slider if s.key.startswith("w_z")]


def test_conv_model_falls_back_to_server_sliders(explore):
    at = explore("conv")
    assert not [e for e in at.main if e.type == "bidi_component"]
    assert len([s for s in at.slider if s.key.startswith("w_z")]) == 4
    before = decoded_image(at)
    at.slider(key="w_z0").set_value(at.slider(key="w_z0").min).run()
    assert decoded_image(at) != before


def test_live_decoder_gets_the_weights_once_and_python_moves_its_z(explore):
    at = explore("8d")
    data = live_data(at)
    assert data["weights"]["hash"] == data["hash"] and len(data["z"]) == 8 and len(data["dims"]) == 8
    at.session_state[LOADED] = data["hash"]  # what the browser's "loaded" report records
    at.run()
    again = live_data(at)
    assert "weights" not in again and again["hash"] == data["hash"]
    at.button(key="explore_start_prior").click().run()
    moved = live_data(at)
    assert moved["z_version"] > again["z_version"] and moved["z"] != again["z"]


def test_selection_maps_customdata_to_dataset_rows():
    selection = {"points": [
        {"curve_number": 3, "point_index": 0, "customdata": [412]},
        {"curve_number": 1, "point_index": 0, "customdata": {"0": 7}},  # numpy customdata arrives keyed by position
        {"curve_number": 12, "point_index": 0},  # the z marker has no customdata
        {"curve_number": 0, "point_index": 5, "customdata": 412},
    ]}
    assert selected_rows(selection) == [412, 7]
    assert selected_rows({"points": []}) == [] and selected_rows(None) == []
    mu = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(selection_target([2], mu), mu[2])
    assert selection_target([1, 2], mu) is None and selection_target([], mu) is None


def test_a_click_moves_the_sliders_to_the_images_code(explore):
    at = server_mode(explore("8d"))
    before = decoded_image(at)
    code = [0.5 * (i - 4) for i in range(8)]
    at.session_state["explore_z"] = code  # what the selection callback does with selection_target's z
    at.session_state["explore_z_version"] = at.session_state["explore_z_version"] + 1
    at.run()
    assert [at.slider(key=f"w_z{d}").value for d in range(8)] == pytest.approx(code, abs=1e-6)
    assert decoded_image(at) != before


def test_page_state_survives_a_page_switch(explore):
    at = server_mode(explore("8d"))
    at.selectbox(key="w_explore_method").set_value("identity").run()
    at.selectbox(key="w_explore_colour").set_value("KL").run()
    at.button(key="explore_start_prior").click().run()
    z = list(at.session_state["explore_z"])
    at.switch_page("app_pages/data.py").run()
    at.switch_page(EXPLORE).run()
    assert not at.exception
    assert at.selectbox(key="w_explore_method").value == "identity"
    assert at.selectbox(key="w_explore_colour").value == "KL"
    assert at.button_group(key="w_explore_decoder_mode").value == "Server"
    assert list(at.session_state["explore_z"]) == z
    assert at.query_params["method"] == "identity"


def test_a_shared_url_restores_z_and_method(explore):
    at = explore("2d", z="0.5,-1.25", method="identity")
    assert list(at.session_state["explore_z"]) == [0.5, -1.25]
    assert at.selectbox(key="w_explore_method").value == "identity"
    assert live_data(at)["z"] == [0.5, -1.25]
    wrong = explore("8d", z="1,2,3")  # another model's z is ignored
    assert list(wrong.session_state["explore_z"]) == [0.0] * 8


def test_another_model_starts_at_zeros_with_no_selection(explore, runs):
    at = explore("8d")
    at.session_state["explore_selection"] = [5, 9]
    at.run()
    assert any("Selected: 2 images" in m.value for m in at.markdown)
    at.session_state["active_run"] = str(runs["32d"])
    at.run()
    assert not at.exception
    assert at.session_state["explore_selection"] == [] and list(at.session_state["explore_z"]) == [0.0] * 32
