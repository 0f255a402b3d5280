"""The server's queue of slow projection fits (ui/fit_queue.py): one fit at a time however many sessions ask, one
fit per key, a session's waiting fit replaced when it asks for another, fits of sessions that went away dropped, a
bounded queue with a clear message; and the Explore page going through it (the queue's message on the page)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.wait import wait_until
from ui.fit_queue import FitQueue, QueueFull

ROOT = Path(__file__).resolve().parent.parent


class Fits:
    """Fit functions that block until released and record how many run at once."""

    def __init__(self):
        self.lock, self.now, self.most, self.ran = threading.Lock(), 0, 0, []
        self.release = threading.Event()

    def fit(self, name: str):
        def run(report):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            self.release.wait(30)
            with self.lock:
                self.now -= 1
                self.ran.append(name)
            return f"fitted {name}"
        return run


def test_one_fit_at_a_time_shared_per_key_replaced_per_session_and_bounded():
    alive = {"A", "B", "C", "D"}
    fits, queue = Fits(), FitQueue(lambda sid: sid in alive, max_waiting=2)
    first = queue.submit("k1", "A", fits.fit("k1"))
    wait_until(lambda: first.outcome == "running", "the first fit to start")
    same = queue.submit("k1", "B", fits.fit("k1 again"))  # B asks for the same projection: no second fit
    waiting = queue.submit("k2", "C", fits.fit("k2"))
    replaced = queue.submit("k3", "D", fits.fit("k3"))
    assert same is first and queue.ahead_of(waiting) == 1 and queue.ahead_of(replaced) == 2
    with pytest.raises(QueueFull, match="2 t-SNE fits are already waiting on this server"):
        queue.submit("k4", "A", fits.fit("k4"))
    newer = queue.submit("k5", "D", fits.fit("k5"))  # D asks for another: its waiting k3 is cancelled
    assert replaced.outcome == "cancelled" and replaced.done.is_set()
    with pytest.raises(ValueError, match="cancelled"):
        replaced.value()
    alive.discard("C")  # C goes away before its fit starts
    fits.release.set()
    assert first.done.wait(30) and newer.done.wait(30)
    assert first.value() == "fitted k1" and newer.value() == "fitted k5" and waiting.outcome == "cancelled"
    assert fits.ran == ["k1", "k5"] and fits.most == 1 and queue.fits == 2
    again = queue.submit("k1", "C", fits.fit("k1 once more"))  # kept: no fit at all
    assert again.done.is_set() and again.value() == "fitted k1" and queue.fits == 2


def test_a_failed_fit_reports_its_error_and_the_queue_goes_on():
    queue = FitQueue(lambda sid: True)
    bad = queue.submit("bad", "A", lambda report: 1 / 0)
    assert bad.done.wait(30) and bad.outcome == "failed"
    with pytest.raises(ZeroDivisionError):
        bad.value()
    good = queue.submit("good", "A", lambda report: 42)
    assert good.done.wait(30) and good.value() == 42


@pytest.fixture
def explore(monkeypatch, tmp_path):
    from vae_core.config import ModelConfig, RunConfig
    from vae_core.runs import save_run
    from vae_core.jobs import build_model

    config = ModelConfig(latent_dim=3, hidden_sizes=(16,))
    run = save_run(tmp_path / "runs" / "tiny", build_model(config, seed=0),
                   RunConfig(model=config, dataset={"kind": "digits", "name": "digits"}))
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))

    def open_() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["active_run"] = str(run)
        at.session_state["explore_tsne_max_points"] = 150
        at.session_state["explore_tsne_iterations"] = 250
        at.switch_page("pages/explore.py").run()
        assert not at.exception
        return at

    return open_


def test_the_explore_page_fits_tsne_through_the_servers_queue(explore, monkeypatch):
    from ui.server import fit_queue

    queue = fit_queue()
    before = queue.fits
    a = explore()
    a.selectbox(key="w_explore_method").set_value("tsne").run()
    a.button(key="explore_fit").click().run()  # the settings are chosen before the fit: it starts on Fit
    assert not a.exception and queue.fits == before + 1
    b = explore()
    b.selectbox(key="w_explore_method").set_value("tsne").run()
    assert not b.exception and queue.fits == before + 1  # the same map for another session: fitted once

    monkeypatch.setattr(queue, "max_waiting", 0)  # a full queue: a new fit is refused, with the reason
    b.slider(key="w_explore_tsne_perplexity").set_value(7).run()
    b.button(key="explore_fit").click().run()
    assert not b.exception and queue.fits == before + 1
    assert "t-SNE fits are already waiting on this server" in " ".join(w.value for w in b.warning)


def test_a_running_fit_nobody_waits_for_is_stopped_at_its_next_report():
    alive = {"A"}
    reports, release = [], threading.Event()

    def fit(report):
        while not release.wait(0.01):
            reports.append(0.5)
            if report(0.5):
                raise InterruptedError("stopped")
        return "fitted"

    queue = FitQueue(lambda sid: sid in alive)
    ticket = queue.submit("k", "A", fit, method="tsne", work=100.0)
    wait_until(lambda: ticket.progress == 0.5, "the fit's first report")
    alive.discard("A")  # the asker closed the tab
    assert ticket.done.wait(30) and ticket.outcome == "cancelled"
    with pytest.raises(ValueError, match="cancelled"):
        ticket.value()
    assert queue.cached("k") is None and queue.estimate("tsne", 100.0) is None  # neither kept nor timed


def test_the_estimate_is_the_median_rate_of_the_methods_last_fits_here():
    queue = FitQueue(lambda sid: True)
    assert queue.estimate("tsne", 1000.0) is None  # nothing measured yet
    for seconds in (2.0, 3.0, 100.0):  # one fit slowed by another process: the median ignores it
        queue.record("tsne", 1000.0, seconds)
    assert queue.estimate("tsne", 2000.0) == pytest.approx(6.0)  # 3 s per 1,000 units, twice the work
    assert queue.estimate("umap", 1000.0) is None  # per method
    done = queue.submit("k", "A", lambda report: "fitted", method="umap", work=10.0)
    assert done.done.wait(30) and queue.estimate("umap", 10.0) > 0  # the queue times its own fits


def test_tsne_settings_and_its_estimate_come_before_the_fit(explore):
    """Picking t-SNE fits nothing: its settings and the time it will take (a rate measured on this server) are shown
    with a Fit button; each setting is part of the map's key, and the map drawn is the one fitted with them."""
    from ui.explore.fits import ASKED
    from ui.server import fit_queue

    queue = fit_queue()
    at = explore()
    at.selectbox(key="w_explore_method").set_value("tsne").run()
    before = queue.fits
    at.slider(key="w_explore_tsne_perplexity").set_value(12).run()
    assert not at.exception and queue.fits == before and not at.session_state[ASKED]  # nothing fitted yet
    caption = " ".join(c.value for c in at.caption)
    assert "t-SNE on 150 codes: about" in caption and "measured on this server" in caption, caption
    assert queue.estimate("tsne", 1.0) is not None  # a timed trial (or an earlier fit) gave the rate

    at.button(key="explore_fit").click().run()
    assert not at.exception and queue.fits == before + 1
    fitted = [p for p in (queue.cached(k) for k in list(queue._results)) if getattr(p, "perplexity", None) == 12]
    assert fitted and len(fitted[0].rows_) == 150  # fitted with the chosen settings
    at.slider(key="w_explore_tsne_perplexity").set_value(20).run()  # other settings: another map, not started
    assert queue.fits == before + 1 and any("Fit" in b.label for b in at.button)
