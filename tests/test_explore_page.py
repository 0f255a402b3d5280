"""The Explore page through AppTest: it renders for 2-, 8- and 32-D MLP models and a conv model (all live in the
browser), a server slider changes the decoded image and moves the map's star, assets travel once per browser and
again when it asks, the map carries what hover, click, drag and t-SNE placement need, and the page's state survives
a page switch and comes back from the URL."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ui.explore.image_blocks import block_bytes, block_rows
from ui.explore.live import SENT, Asset, bundle, parse_bundle
from ui.explore.views import SHOWN as VIEWS_SHOWN
from vae_core.data import load_digits
from vae_core.latent import decode, encode
from vae_core.runs import load_run
from vae_core.config import ModelConfig, RunConfig
from vae_core.runs import save_run
from vae_core.jobs import build_model

ROOT = Path(__file__).resolve().parent.parent
EXPLORE = "pages/explore.py"


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
    """Open Explore in a fresh AppTest with the given run active (and optional URL query parameters), as a user who
    has scrolled down to the views and opened the drawing pad (every part drawn); whole_page=False: the first screen."""
    monkeypatch.setenv("VAE_RUNS_DIR", str(next(iter(runs.values())).parent))
    monkeypatch.setenv("VAE_THREADS", "1")

    def open_(run: str, whole_page: bool = True, **query) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["active_run"] = str(runs[run])
        if whole_page:
            at.session_state[VIEWS_SHOWN] = True  # what scrolling near the views does (the reveal marker's event)
            at.session_state["explore_pad_open"] = True  # what opening the pad's expander does
        for name, value in query.items():
            at.query_params[name] = value
        at.switch_page(EXPLORE).run()
        assert not at.exception, at.exception
        return at

    return open_


def decoded_image(at: AppTest) -> np.ndarray:
    """The image decoded on the server, as the live view's "server" part gets it: (C, H, W) uint8."""
    image = parts(at)["server"][0]["image"]
    return np.frombuffer(base64.b64decode(image["pixels"]), np.uint8).reshape(image["shape"])


def parts(at: AppTest) -> dict[str, tuple[dict, dict]]:
    """The live view's mounts by role: (view, the assets this run carried)."""
    found = {}
    for element in at.main:
        if element.type == "bidi_component" and element.proto.component_name == "vae_explore":
            view, assets = parse_bundle(element.proto.bytes)
            found[view["role"]] = (view, assets)
    return found


def server_mode(at: AppTest) -> AppTest:
    at.button_group(key="w_explore_decoder_mode").set_value("Server").run()
    assert not at.exception
    return at


def slider_order(at: AppTest) -> list[int]:
    """The slider order the page chose (by KL, collapsed last), read from the sliders' labels."""
    return [int(s.key.removeprefix("w_z")) for s in at.slider if s.key.startswith("w_z")]


@pytest.mark.parametrize("run,dims", [("2d", 2), ("8d", 8), ("32d", 32), ("conv", 4)])
def test_explore_renders_every_view_without_exception(explore, run, dims):
    at = explore(run)
    assert at.title[0].value == "Explore the latent space"
    assert set(parts(at)) == {"panel", "map", "pad", "grid"}  # conv models run in the browser too; grid: traversals
    assert len(at.query_params["z"].split(",")) == dims
    for tab in ("Manifold", "Interpolation", "Sampling", "Traversals"):
        at.session_state["w_explore_tab"] = tab
        at.run()
        assert not at.exception, (tab, at.exception)
    for colour in at.selectbox(key="w_explore_colour").options:  # label, factors (shapes), error, KL
        at.selectbox(key="w_explore_colour").set_value(colour).run()
        assert not at.exception, (colour, at.exception)


def test_a_new_sessions_first_screen_waits_for_a_scroll_before_the_views(explore):
    """The first screen (map, sliders) goes out alone: no nearest images, views or pad until the page is scrolled
    near them (the reveal marker's event) or the pad is opened."""
    at = explore("8d", whole_page=False)
    assert set(parts(at)) == {"panel", "map"}
    assert not at.tabs and not any("Nearest" in m.value for m in at.markdown)
    assert [e.proto.component_name for e in at.main if e.type == "bidi_component"][-1] == "vae_explore_reveal"
    at.session_state[VIEWS_SHOWN] = True  # what the marker's "seen" event does
    at.run()
    assert not at.exception
    assert set(parts(at)) == {"panel", "map", "grid"} and any("Nearest" in m.value for m in at.markdown)
    assert "vae_explore_reveal" not in [e.proto.component_name for e in at.main if e.type == "bidi_component"]


def test_tsne_places_z_approximately_and_says_so(explore):
    at = explore("conv")
    at.session_state["explore_tsne_max_points"] = 100  # a quick map: 100 of the 300 shapes, 250 iterations
    at.session_state["explore_tsne_iterations"] = 250
    at.selectbox(key="w_explore_method").set_value("tsne").run()
    at.button(key="explore_fit").click().run()  # the settings are chosen before the fit: it starts on Fit
    assert not at.exception
    assert any("placed at the distance-weighted mean" in c.value and "subsample of 100" in c.value
               for c in at.caption)
    _, assets = parts(at)["map"]
    (map_,) = [a for a in assets.values() if a.kind == "map"]
    (colour,) = [a for a in assets.values() if a.kind == "colour"]
    assert map_.meta["method"] == "tsne" and not map_.meta["exact"] and not map_.meta["draggable"]
    assert map_.arrays["codes"].size == 100 * 4 and map_.arrays["xy"].size == 200  # the browser places z among them
    assert colour.meta["names"] == ["square", "ellipse", "triangle", "heart"]


def test_the_map_carries_what_hover_click_and_drag_need(explore, runs):
    at = explore("8d")
    view, assets = parts(at)["map"]
    map_ = assets[view["assets"]["map"]]
    rows = map_.arrays["rows"]
    assert len(rows) == 1797 and map_.meta["total"] == 1797 and map_.meta["draggable"]
    digits = load_digits()
    _, mu, _ = encode(load_run(runs["8d"]).model, digits)
    np.testing.assert_allclose(map_.arrays["mu"].reshape(-1, 8), mu[rows], atol=1e-6)  # a click goes to mu
    per = block_rows(64)  # hover's image: fetched in blocks of rows (ui/explore/image_blocks.py)
    image = np.frombuffer(block_bytes(digits, int(rows[5]) // per, per), np.uint8).reshape(-1, 64)[rows[5] % per]
    np.testing.assert_array_equal(image, np.round(digits.batch(np.array([rows[5]]))[0].ravel() * 255))
    xy = (mu - mu.mean(0)) @ map_.arrays["components"].reshape(2, 8).T  # PCA: the same mean and axes as the server
    np.testing.assert_allclose(map_.arrays["xy"].reshape(-1, 2), xy[rows], atol=1e-4)


def test_moving_a_server_slider_changes_the_image_and_moves_the_star(explore):
    at = server_mode(explore("8d"))
    before, version = decoded_image(at), parts(at)["map"][0]["z_version"]
    top = slider_order(at)[0]  # the most informative dimension
    slider = at.slider(key=f"w_z{top}")
    slider.set_value(slider.max).run()
    assert not at.exception
    z = np.asarray(at.session_state["explore_z"], np.float32)
    expected = np.round(decode(load_run(at.session_state["active_run"]).model, z[None])[0] * 255)
    assert not np.array_equal(decoded_image(at), before)
    np.testing.assert_array_equal(decoded_image(at), expected)
    assert at.session_state["explore_z"][top] == pytest.approx(slider.max)
    assert at.query_params["z"].split(",")[top] == f"{slider.max:.4g}"
    view = parts(at)["map"][0]
    assert view["z_version"] > version and view["z"][top] == pytest.approx(slider.max)  # the star goes there
    relays = [json.loads(e.proto.json) for e in at.main if e.type == "bidi_component"
              and e.proto.component_name == "vae_explore_relay"]
    assert len(relays) == 8 and all(r["z"][top] == pytest.approx(slider.max) for r in relays)
    moved = [r for r in relays if r["image"] is not None]  # only the moved slider's fragment sends its image
    assert len(moved) == 1 and moved[0]["image"] == parts(at)["server"][0]["image"]


def test_a_server_slider_the_browser_creates_afresh_shows_z(explore):
    """Every run's message for a server slider brings z[d]: as the value Python sets (set_value) or as its default.
    A later run can re-send a slider before the browser drew the run that set its value; the browser then creates it
    from that message's default. With the range's minimum there (Streamlit's default) the browser showed the minimum
    and sent it as a move of that slider with the next change of another: two moves in one rerun (the load test's
    unanswered changes)."""
    at = server_mode(explore("8d"))
    at.slider(key=f"w_z{slider_order(at)[0]}").set_value(at.slider(key=f"w_z{slider_order(at)[0]}").max).run()
    for _ in range(2):  # the run that moved z (the moved slider's value set from z), then a plain rerun
        z = at.session_state["explore_z"]
        for d in range(8):
            proto = at.slider(key=f"w_z{d}").proto
            shown = proto.value[0] if proto.set_value else proto.default[0]
            assert shown == pytest.approx(z[d], abs=1e-6), (d, proto.set_value, shown, z[d])
        at.run()
        assert not at.exception


def test_conv_model_decodes_on_the_server_too(explore):
    at = server_mode(explore("conv"))
    assert len([s for s in at.slider if s.key.startswith("w_z")]) == 4
    before = decoded_image(at)
    at.slider(key="w_z0").set_value(at.slider(key="w_z0").min).run()
    assert not np.array_equal(decoded_image(at), before)


def test_assets_travel_once_per_browser_and_again_when_it_asks(explore):
    at = explore("8d")
    first = parts(at)
    model_hash = first["panel"][0]["assets"]["model"]
    assert model_hash in first["panel"][1]  # the panel carried the model (the decoder's weights); the pad names it
    assert [a.kind for a in first["pad"][1].values()] == ["encoder"]  # and carries the encoder's, which only it uses
    assert not any(a.kind == "encoder" for a in first["panel"][1].values())
    assert first["pad"][0]["assets"]["model"] == model_hash
    assert first["map"][0]["assets"]["model"] == model_hash and model_hash not in first["map"][1]
    at.run()
    assert not any(assets for _, assets in parts(at).values())
    at.session_state[SENT] = at.session_state[SENT] - {model_hash}  # what a "need" event from the browser does
    at.run()
    assert model_hash in parts(at)["panel"][1]
    at.button(key="explore_start_prior").click().run()
    moved = parts(at)["panel"][0]
    assert moved["z_version"] > first["panel"][0]["z_version"] and moved["z"] != first["panel"][0]["z"]


def test_bundles_round_trip_their_arrays():
    arrays = {"f": np.linspace(0, 1, 7, dtype=np.float32), "i": np.arange(5, dtype=np.int32),
              "u": np.arange(3, dtype=np.uint8), "s": np.array([-2, 9], np.int16)}
    asset, other = Asset("map", {"name": "<b>user</b>"}, arrays), Asset("colour", {}, {"v": np.ones(2, np.uint16)})
    view, assets = parse_bundle(bundle({"z": [0.5]}, [asset, other]))
    assert view == {"z": [0.5]} and set(assets) == {asset.hash, other.hash}
    for name, array in arrays.items():
        np.testing.assert_array_equal(assets[asset.hash].arrays[name], array)
    assert assets[asset.hash].meta == {"name": "<b>user</b>"}  # strings travel as data; the page sets textContent
    with pytest.raises(ValueError, match="dtype"):
        bundle({}, [Asset("map", {}, {"x": np.zeros(2, np.float64)})])


def test_a_click_moves_the_sliders_to_the_images_code(explore):
    at = server_mode(explore("8d"))
    before = decoded_image(at)
    code = [0.5 * (i - 4) for i in range(8)]
    at.session_state["explore_z"] = code  # what a server-side move does
    at.session_state["explore_z_version"] = at.session_state["explore_z_version"] + 1
    at.run()
    assert [at.slider(key=f"w_z{d}").value for d in range(8)] == pytest.approx(code, abs=1e-6)
    assert not np.array_equal(decoded_image(at), before)


def test_page_state_survives_a_page_switch(explore):
    at = server_mode(explore("8d"))
    at.selectbox(key="w_explore_method").set_value("identity").run()
    at.selectbox(key="w_explore_colour").set_value("KL").run()
    at.button(key="explore_start_prior").click().run()
    z = list(at.session_state["explore_z"])
    at.switch_page("pages/data.py").run()
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
    assert all(view["z"] == [0.5, -1.25] for view, _ in parts(at).values())
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


def test_another_model_starts_its_traversals_at_its_own_dimensions(explore, runs):
    """Dimensions picked for one model (by its KL) are another thing in the next: the Traversals tab and the manifold
    start afresh at the new model's own choice, as a new session on it does."""
    fresh = explore("32d").multiselect(key="w_explore_traverse_dims").value
    at = explore("8d")
    at.multiselect(key="w_explore_traverse_dims").set_value([7, 6]).run()
    assert at.multiselect(key="w_explore_traverse_dims").value == [7, 6]
    at.session_state["active_run"] = str(runs["32d"])  # the Runs page's "Make active model"
    at.run()
    assert not at.exception
    assert at.multiselect(key="w_explore_traverse_dims").value == fresh != [7, 6]
