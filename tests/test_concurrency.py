"""Many users on one server: the job limit holds, nobody sees another's job or run, saves never hide a run from
readers, concurrent imports and renames never collide, and jobs of sessions that went away stop (no leaked threads)."""
from __future__ import annotations

import gc
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from harness.wait import wait_until
from tests.test_runs import TINY, make_run, same_weights
from vae_core.config import TrainConfig
from vae_core.jobs import JobPool, PoolFull, TrainingJob
from vae_core.runs import export_zip, import_zip, list_runs, load_run, rename_run, unique_run_name


def training_threads() -> list[threading.Thread]:
    """Training threads (TrainingJob) and the threads that follow a worker process (ProcessJob, until it has ended)."""
    return [t for t in threading.enumerate() if t.name in ("vae-training", "vae-job-listener") and t.is_alive()]


# ----------------------------------------------------------------------------- the job pool


def test_the_pool_limit_holds_and_each_owner_keeps_its_own_job(tmp_path, digits):
    pool = JobPool(max_jobs=2)
    owners = ["ann", "bob", "cem", "dia"]
    jobs = {o: TrainingJob(digits, TINY, TrainConfig(epochs=500, batch_size=256, seed=i), run_dir=tmp_path / o,
                           threads=1) for i, o in enumerate(owners)}
    barrier, refused = threading.Barrier(len(owners)), {}

    def start(owner: str) -> None:
        barrier.wait()  # all four ask at once
        try:
            pool.start(owner, jobs[owner])
        except PoolFull as exc:
            refused[owner] = str(exc)

    with ThreadPoolExecutor(len(owners)) as ex:
        list(ex.map(start, owners))
    running = sorted(pool.running())
    try:
        assert len(running) == 2 and sorted(refused) == sorted(set(owners) - set(running))
        assert all("limit 2" in msg and "try again" in msg for msg in refused.values())
        assert all(pool.job(o) is jobs[o] for o in running) and all(pool.job(o) is None for o in refused)
        wait_until(lambda: all(load_run_or_none(tmp_path / o) for o in running), what="both autosaves")
        a, b = (jobs[o] for o in running)
        assert a.history()["steps"][0]["total"] != b.history()["steps"][0]["total"]  # different seeds, own curves
        assert not same_weights(a.model_snapshot(), b.model_snapshot())
        assert [load_run(tmp_path / o).config.train.seed for o in running] == [owners.index(o) for o in running]
    finally:
        stopped = pool.reap(lambda owner: False, grace_s=0)  # every session went away
    assert sorted(stopped) == running
    wait_until(lambda: not training_threads(), timeout=60, what="training threads to end")
    assert all(jobs[o].state == "stopped" for o in running) and all(jobs[o].state == "created" for o in refused)
    assert all(load_run(tmp_path / o).state["finished"] is False for o in running)  # stopped runs stay on disk


def load_run_or_none(path):
    try:
        return load_run(path)
    except ValueError:
        return None


def test_reap_waits_for_the_grace_period_and_spares_live_sessions(digits):
    pool = JobPool(max_jobs=2)
    alive = {"ann": True, "bob": False}
    for i, owner in enumerate(alive):
        pool.start(owner, TrainingJob(digits, TINY, TrainConfig(epochs=500, batch_size=256, seed=i), threads=1))
    try:
        assert pool.reap(alive.get, grace_s=3600) == []  # bob just left: still within the grace period
        assert pool.reap(alive.get, grace_s=0) == ["bob"]
        assert sorted(pool.running()) == ["ann"]
    finally:
        pool.reap(lambda owner: False, grace_s=0)
    wait_until(lambda: not training_threads(), timeout=60, what="training threads to end")


# ----------------------------------------------------------------------------- the runs folder under concurrency


def test_readers_never_see_a_missing_or_broken_run_while_it_is_saved_again_and_again(tmp_path):
    path = make_run(tmp_path / "r", seed=0)
    stop, errors, loads = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                loads.append(load_run(path).config.train.seed)
                assert [r.name for r in list_runs(tmp_path)] == ["r"]
            except Exception as exc:  # noqa: BLE001 — any failure is the finding
                errors.append(repr(exc))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for seed in range(1, 40):
            make_run(path, seed=seed)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert errors == [] and len(loads) > 10
    assert load_run(path).config.train.seed == 39


def test_concurrent_imports_of_one_zip_get_distinct_names(tmp_path):
    data = export_zip(make_run(tmp_path / "src" / "shared"))
    root = tmp_path / "runs"
    with ThreadPoolExecutor(6) as ex:
        paths = list(ex.map(lambda _: import_zip(data, root), range(6)))
    assert sorted(p.name for p in paths) == ["shared", *(f"shared-{i}" for i in range(2, 7))]
    assert all(load_run(p) for p in paths) and len(list_runs(root)) == 6


def test_concurrent_renames_to_one_name_have_exactly_one_winner(tmp_path):
    for i in range(6):
        make_run(tmp_path / f"r{i}", seed=i)
    barrier, outcomes = threading.Barrier(6), []

    def rename(i: int) -> None:
        barrier.wait()
        try:
            rename_run(tmp_path, f"r{i}", "winner")
            outcomes.append(("won", i))
        except ValueError as exc:
            outcomes.append(("refused", str(exc)))

    with ThreadPoolExecutor(6) as ex:
        list(ex.map(rename, range(6)))
    won = [i for kind, i in outcomes if kind == "won"]
    assert len(won) == 1 and sum(kind == "refused" for kind, _ in outcomes) == 5
    assert load_run(tmp_path / "winner").config.train.seed == won[0]
    assert sorted(r.name for r in list_runs(tmp_path)) == sorted(["winner", *(f"r{i}" for i in range(6) if i != won[0])])


def test_sessions_starting_runs_at_the_same_moment_never_share_a_folder(tmp_path):
    """The Train page names a run before its folder exists (first autosave): the names must still differ."""
    barrier = threading.Barrier(8)

    def name(_: int) -> str:
        barrier.wait()
        return unique_run_name(tmp_path, "digits-mlp-z8-20260101-120000")

    with ThreadPoolExecutor(8) as ex:
        names = list(ex.map(name, range(8)))
    assert len(set(names)) == 8 and "digits-mlp-z8-20260101-120000" in names


# ----------------------------------------------------------------------------- four browser sessions on one server

APP = str(Path(__file__).resolve().parent.parent / "app.py")
SESSIONS, MAX_JOBS = 4, 2
RUN = threading.Lock()  # AppTest swaps process globals (Runtime._instance, config) during a run: one run at a time


def rss_mb() -> float:
    """This process's resident memory (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def per_session_id() -> str:
    """A distinct id per AppTest (they all share one ScriptRunContext.session_id, unlike real browser sessions)."""
    return st.session_state.setdefault("test_session_id", uuid.uuid4().hex)


@pytest.fixture
def server(monkeypatch, tmp_path):
    """One 'server' process: an empty runs folder, a job limit of 2, and a fresh job pool; stops leftovers after."""
    import ui.server
    import ui.training_ui

    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_THREADS", "1")
    monkeypatch.setenv("VAE_MAX_JOBS", str(MAX_JOBS))
    monkeypatch.setattr(ui.server, "session_id", per_session_id)
    monkeypatch.setattr(ui.training_ui, "session_id", per_session_id)
    ui.server.job_pool.reset()
    yield ui.server
    ui.server.job_pool().reap(lambda owner: False, grace_s=0)
    wait_until(lambda: not training_threads(), timeout=60, what="leftover jobs to stop")
    ui.server.job_pool.reset()


def open_train_page(seed: int, epochs: int) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    with RUN:
        at.run()
        at.switch_page("pages/train.py").run()
        at.selectbox(key="tf_hidden").set_value(32)
        at.selectbox(key="tf_batch").set_value(256)
        at.number_input(key="tf_epochs").set_value(epochs)
        at.number_input(key="tf_seed").set_value(seed)  # every other setting is the default, the same for all
    return at


def click(at: AppTest, key: str) -> None:
    with RUN:
        at.button(key=key).click().run()


def validation_curve(at: AppTest) -> list[float]:
    """The -ELBO validation points of the Train page's loss chart, as the browser would receive them."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return next(t["y"] for t in spec["data"] if t.get("name") == "−ELBO · validation")


def session(i: int, pool, start_together: threading.Barrier, first_round_done: threading.Barrier) -> dict:
    """One user: open Train, press Start with everyone else; if refused, retry once a slot frees up; then look at
    their curves on Train and their model on Explore."""
    at = open_train_page(seed=i, epochs=10_000)
    start_together.wait()
    click(at, "train_start")
    first = {"started": "job" in at.session_state, "errors": [e.value for e in at.error]}
    first_round_done.wait()
    if first["started"]:  # train one epoch, then press Stop (the run is saved) and make it the active model
        job = at.session_state["job"]
        wait_until(lambda: job.progress().epoch >= 1, what=f"session {i}'s first epoch")
        click(at, "train_stop")
        click(at, "train_use_stopped")
    else:  # the limit is reached: wait for a free slot, then train a short run to the end
        with RUN:
            at.number_input(key="tf_epochs").set_value(2)
        deadline = time.monotonic() + 120
        while "job" not in at.session_state:
            assert time.monotonic() < deadline, "no slot freed up"
            wait_until(lambda: len(pool.running()) < MAX_JOBS, what="a free job slot")
            click(at, "train_start")
        job = at.session_state["job"]
        assert job.join(timeout=120)
    with RUN:
        at.run()
        train_view = {"progress": at.get("progress")[0].proto.text, "curve": validation_curve(at),
                      "exceptions": list(at.exception)}
        at.switch_page("pages/explore.py").run()
        explore_view = {"caption": at.caption[0].value, "active_run": at.session_state["active_run"],
                        "exceptions": list(at.exception)}
    return {"i": i, "at": at, "job": job, "first": first, "train": train_view, "explore": explore_view}


@pytest.mark.slow
def test_four_sessions_train_and_explore_apart_under_the_job_limit(server):
    pool = server.job_pool()
    assert pool.max_jobs == MAX_JOBS
    open_train_page(seed=99, epochs=1)  # warm up imports and caches before measuring memory
    gc.collect()
    rss_before, peak = rss_mb(), {"jobs": 0, "threads": 0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak["jobs"] = max(peak["jobs"], len(pool.running()))
            peak["threads"] = max(peak["threads"], len(training_threads()))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    together, round_done = threading.Barrier(SESSIONS), threading.Barrier(SESSIONS)
    try:
        with ThreadPoolExecutor(SESSIONS) as ex:
            results = list(ex.map(lambda i: session(i, pool, together, round_done), range(SESSIONS)))
    finally:
        sampling.set()
        sampler.join()

    # the limit held: two started at first, two were refused with the PoolFull message, never more than two ran
    assert sorted(r["first"]["started"] for r in results) == [False, False, True, True]
    for r in results:
        if not r["first"]["started"]:
            assert any(f"limit {MAX_JOBS}" in e and "try again" in e for e in r["first"]["errors"]), r["first"]
    assert peak["jobs"] <= MAX_JOBS and peak["threads"] <= MAX_JOBS

    # nobody sees another's job, run, curves or model
    run_dirs = {r["job"].run_dir for r in results}
    assert len({id(r["job"]) for r in results}) == SESSIONS and len(run_dirs) == SESSIONS  # same settings, same second
    for r in results:
        job, train, explore = r["job"], r["train"], r["explore"]
        assert not train["exceptions"] and not explore["exceptions"]
        progress = job.progress()
        assert f"epoch {progress.epoch}/{job.train_config.epochs}" in train["progress"]
        assert train["curve"] == [e["val_neg_elbo"] for e in job.history()["epochs"]]  # this job's own curve
        assert explore["active_run"] == str(job.run_dir) and explore["caption"].startswith(f"**{job.run_dir.name}**")
        saved = load_run(job.run_dir)
        assert saved.config.train.seed == r["i"] and len(saved.history["epochs"]) == progress.epoch
        assert same_weights(saved.model, job.model_snapshot())
    curves = [tuple(r["train"]["curve"][:1]) for r in results]
    assert len(set(curves)) == SESSIONS  # different seeds: four different first validation points

    # sessions that go away mid-training: their jobs stop and no training thread is left behind
    for r in results[:MAX_JOBS]:
        with RUN:
            r["at"].switch_page("pages/train.py").run()
            r["at"].number_input(key="tf_epochs").set_value(10_000)
        click(r["at"], "train_start")
    assert len(pool.running()) == MAX_JOBS and len(training_threads()) == MAX_JOBS
    del results
    stopped = pool.reap(lambda owner: False, grace_s=0)  # the watchdog's verdict once the grace period is over
    assert len(stopped) >= MAX_JOBS
    wait_until(lambda: not training_threads(), timeout=60, what="the orphaned jobs to stop")
    gc.collect()
    growth = rss_mb() - rss_before
    print(f"RSS {rss_before:.0f} MB before, growth {growth:.0f} MB after {SESSIONS} sessions")
    assert growth < 400, f"server memory grew by {growth:.0f} MB"
