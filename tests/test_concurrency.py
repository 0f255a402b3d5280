"""Many users on one server: the job limit holds, nobody sees another's job or run, saves never hide a run from
readers, concurrent imports and renames never collide, and jobs of sessions that went away stop (no leaked threads)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.test_runs import TINY, make_run, same_weights
from vae_core.config import TrainConfig
from vae_core.data import load_digits
from vae_core.jobs import JobPool, PoolFull
from vae_core.runs import export_zip, import_zip, list_runs, load_run, rename_run
from vae_core.training import TrainingJob


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def wait_until(predicate, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def training_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "vae-training" and t.is_alive()]


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
