"""A shared Explore link (issue 25 item 3): the URL carries the run, the data, the projection and its settings, the
colouring, z and the open tab; opened in a new session it restores that view, and where it cannot (the run is gone,
the data was another session's upload, a value no widget takes) the page says why. Nothing in the URL is trusted: a
run is found by its listed name only, a dataset rebuilt only from a source that reads no file within its options'
ranges. (The browser's side: tests/e2e/test_explore_link.py.)"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.test_explore_page import make_run
from ui.explore.link import data_word, source_from_word
from vae_core.data import load_source

ROOT = Path(__file__).resolve().parent.parent
EXPLORE = "pages/explore.py"
SHAPES8 = {"kind": "shapes", "n": 200, "size": 8, "seed": 3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    digits = {"kind": "digits", "name": "digits"}
    return {"8d": make_run(root, "digits-8d", digits, latent_dim=8, hidden_sizes=(32,)),
            "4d": make_run(root, "digits-4d", digits, latent_dim=4, hidden_sizes=(16,))}


@pytest.fixture
def open_explore(monkeypatch, runs):
    """A fresh session (AppTest) whose first page is Explore at a URL with the given query parameters; active: the
    run a new session would get unless the link says otherwise (here digits-4d)."""
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs["8d"].parent))
    monkeypatch.setenv("VAE_THREADS", "1")

    def open_(**query) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
        at.session_state["active_run"] = str(runs["4d"])
        for name, value in query.items():
            at.query_params[name] = value
        at.switch_page(EXPLORE).run()
        assert not at.exception, at.exception
        return at

    return open_


def link_of(at: AppTest) -> dict[str, str]:
    return {name: at.query_params[name] for name in at.query_params}


def warnings(at: AppTest) -> str:
    """What the page says of the link (its warning carries the broken-link icon; a weak model's warning does not)."""
    return " ".join(w.value for w in at.warning if w.icon == ":material/link_off:")


def test_a_view_written_to_the_url_opens_the_same_in_a_new_session(open_explore, runs):
    at = open_explore(run="digits-8d", data=data_word(load_source(SHAPES8)))  # a session that moved its view ...
    at.selectbox(key="w_explore_colour").set_value("KL").run()
    at.session_state["w_explore_tab"] = "Sampling"
    at.session_state["explore_tab"] = "Sampling"
    at.selectbox(key="w_explore_method").set_value("identity").run()
    at.selectbox(key="w_explore_x").set_value(5).run()
    z = [0.25, -1.5, 0.0, 2.0, 0.125, 0.0, -0.5, 1.0]
    at.session_state["explore_z"] = z
    at.run()
    assert not at.exception, at.exception
    link = link_of(at)
    assert link["run"] == "digits-8d" and link["data"] == "shapes:n=200,seed=3,size=8"
    assert (link["method"], link["colour"], link["tab"], link["p_dims"]) == ("identity", "KL", "Sampling",
                                                                            f"5,{at.selectbox(key='w_explore_y').value}")

    other = open_explore(**link)  # ... and the link opened by someone whose session would show digits-4d on digits
    assert Path(other.session_state["active_run"]) == runs["8d"]
    assert other.session_state["dataset_source"] == SHAPES8
    assert other.selectbox(key="w_explore_method").value == "identity"
    assert other.selectbox(key="w_explore_x").value == 5
    assert other.selectbox(key="w_explore_y").value == at.selectbox(key="w_explore_y").value
    assert other.selectbox(key="w_explore_colour").value == "KL"
    assert other.session_state["explore_tab"] == "Sampling"
    assert list(other.session_state["explore_z"]) == z
    assert not warnings(other)
    assert link_of(other) == link  # the restored view writes the same link back


def test_a_projection_setting_comes_back_from_the_link(open_explore):
    at = open_explore(run="digits-8d", method="tsne", p_perplexity="12", p_iterations="250", p_max_points="100")
    assert at.selectbox(key="w_explore_method").value == "tsne"
    assert at.session_state["explore_tsne_perplexity"] == 12
    assert at.session_state["explore_tsne_iterations"] == 250
    assert at.session_state["explore_tsne_max_points"] == 100
    assert at.query_params["p_perplexity"] == "12"


@pytest.mark.parametrize("query,said", [
    ({"run": "gone-run"}, "run **gone-run** is not on this server"),
    ({"run": "../../etc"}, "run **../../etc** is not on this server"),  # a name, never a path
    ({"data": "file:my-upload.zip"}, "loaded from a file in another session"),
    ({"data": "shapes:n=100000000,seed=0,size=8"}, "outside 100..200000"),
    ({"data": "nosuch:x=1"}, "unknown dataset source 'nosuch'"),
    ({"method": "spectral"}, "projection (spectral) is not offered"),
    ({"colour": "factor: scale"}, "colouring (factor: scale) does not apply"),
    ({"tab": "Nowhere"}, "tab (Nowhere) is not one of Explore's"),
    ({"method": "tsne", "p_perplexity": "1e9"}, "perplexity (1e9) is not a value it takes"),
])
def test_what_a_link_cannot_restore_is_said_and_the_rest_still_opens(open_explore, runs, query, said):
    at = open_explore(**query)
    assert said in warnings(at), warnings(at)
    assert at.title[0].value == "Explore the latent space" and at.selectbox(key="w_explore_colour").value
    if "run" in query:
        assert Path(at.session_state["active_run"]) == runs["4d"]  # the active model stays
    if "data" in query:
        assert at.session_state["dataset_source"] == "digits"  # the active data stays


def test_the_warning_is_said_once_not_on_every_rerun(open_explore):
    at = open_explore(run="gone-run")
    assert "gone-run" in warnings(at)
    at.selectbox(key="w_explore_colour").set_value("KL").run()
    assert "gone-run" not in warnings(at)


def test_data_words_round_trip_for_sources_that_read_no_file():
    for source in ({"kind": "digits"}, SHAPES8, {"kind": "shapes", "n": 300, "size": 32, "seed": 0}):
        word = data_word(load_source(source))
        assert load_source(source_from_word(word)).source == load_source(source).source
    with pytest.raises(ValueError, match="no option 'path'"):
        source_from_word("shapes:path=/etc/passwd")
    with pytest.raises(ValueError, match="reads files"):
        source_from_word("path:path=/etc/passwd")
