"""Server-wide limits, each with the message a user sees: one job per session, a wall-clock cap per job, an upload's
file count and size checked before anything is written, uploads and imported runs cleaned by age and size (never
what a connected session or a job uses)."""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from harness.wait import wait_until
from tests.helpers import stop_session_jobs
from ui.storage import make_room, prune_imported
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.data import load_digits
from vae_core.jobs import JobPool, TrainingJob
from vae_core.model import VAE
from vae_core.runs import export_zip, save_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_THREADS", "1")
    made: list[AppTest] = []

    def make(page: str) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run().switch_page(page).run()
        made.append(at)
        return at

    yield make
    stop_session_jobs(made)


def long_job(tiny) -> TrainingJob:
    return TrainingJob(tiny, ModelConfig(hidden_sizes=(8,)), TrainConfig(epochs=10**6, batch_size=32), threads=1)


def test_one_job_per_session_and_a_wall_clock_cap():
    tiny = load_digits().subset(np.arange(64))
    pool = JobPool(max_jobs=2, max_job_s=600)
    first, second, other = long_job(tiny), long_job(tiny), long_job(tiny)
    try:
        pool.start("A", first)
        pool.start("A", second)  # the same session again: its previous job stops, the server's count stays one
        assert first.join(timeout=30) and first.state == "stopped" and second.is_active
        pool.start("B", other)
        assert set(pool.running()) == {"A", "B"}
        assert pool.stop_overdue() == []  # not yet
        pool.max_job_s = 0.2
        wait_until(lambda: pool.stop_overdue() is not None and {second.state, other.state} <= {"stopping", "stopped"},
                   "the cap to stop both jobs", timeout=10)
        assert second.join(timeout=30) and other.join(timeout=30) and second.state == other.state == "stopped"
        why = pool.why_stopped("A", second)
        assert "limited in time" in why and "VAE_MAX_JOB_SECONDS" in why and pool.why_stopped("A", first) is None
    finally:
        for job in (first, second, other):
            job.stop()
            job.join(timeout=30)


def test_the_train_page_says_why_the_cap_stopped_a_job(app, monkeypatch):
    from ui.server import job_pool

    at = app("pages/train.py")
    at.number_input(key="tf_epochs").set_value(5000)
    at.button(key="train_start").click().run()
    job = at.session_state["job"]
    monkeypatch.setattr(job_pool(), "max_job_s", 0.2)
    # the server's watchdog (every 5 s) may get there first: then this call finds nothing left to stop; the page's
    # warning below says which of them stopped the job
    wait_until(lambda: time.sleep(0.05) or job_pool().stop_overdue() or job.state in ("stopping", "stopped"),
               "the cap", timeout=30)
    job.join(timeout=30)
    at.run()
    assert not at.exception and "limited in time" in " ".join(w.value for w in at.warning)


def npz_bytes(n: int) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(n).integers(0, 256, (n, 8, 8), dtype=np.uint8))
    return buf.getvalue()


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.segmented_control(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value([(name, data, "application/octet-stream") for name, data in files])
    return at.run()


def written(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs" / ".uploads"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_upload_count_and_size_are_checked_before_anything_is_written(app, tmp_path, monkeypatch):
    at = upload(app("pages/data.py"), ("a.npz", npz_bytes(10)), ("b.npz", npz_bytes(11)), ("c.npz", npz_bytes(12)))
    assert "3 files" in at.error[0].value and "a.npz" in at.error[0].value and not written(tmp_path)
    monkeypatch.setenv("VAE_MAX_UPLOAD_BYTES", "1000")
    at = upload(app("pages/data.py"), ("big.npz", npz_bytes(100)))
    assert "big.npz" in at.error[0].value and "VAE_MAX_UPLOAD_BYTES" in at.error[0].value and not written(tmp_path)
    assert at.session_state["dataset_source"] == "digits"


def aged(path: Path, days: float) -> Path:
    when = time.time() - days * 86400
    os.utime(path, (when, when))
    return path


def test_make_room_by_age_then_oldest_first_never_what_is_in_use(tmp_path):
    folders = {name: tmp_path / name for name in ("expired", "old", "busy", "new")}
    for path in folders.values():
        path.mkdir()
        (path / "data").write_bytes(b"x" * 100)
    items = [(folders["expired"], time.time() - 8 * 86400, 100), (folders["busy"], time.time() - 30 * 86400, 100),
             (folders["old"], time.time() - 3600, 100), (folders["new"], time.time(), 100)]
    in_use = lambda p: p == folders["busy"]  # noqa: E731
    removed = make_room(items, in_use, budget=10_000, incoming=0, what="uploads")
    assert removed == [folders["expired"]]  # the budget is not exceeded: only the expired one
    removed = make_room(items[1:], in_use, budget=350, incoming=100, what="uploads")
    assert removed == [folders["old"]] and folders["busy"].exists() and folders["new"].exists()
    with pytest.raises(ValueError, match="full: 0 MB are in use by connected sessions"):
        make_room([items[1]], in_use, budget=150, incoming=100, what="uploads")


def test_old_uploads_nobody_uses_make_room_for_new_ones(app, tmp_path, monkeypatch):
    import ui.sharing

    at = upload(app("pages/data.py"), ("first.npz", npz_bytes(30)))
    first = Path(at.session_state["dataset_source"]["path"]).parent
    monkeypatch.setenv("VAE_UPLOADS_MAX_BYTES", str(int(1.5 * len(npz_bytes(30)))))  # room for one upload
    at = upload(app("pages/data.py"), ("second.npz", npz_bytes(31)))
    assert "space for uploaded data is full" in at.error[0].value and first.exists()  # its session is connected
    monkeypatch.setattr(ui.sharing, "session_is_alive", lambda sid: False)  # ... until it goes away
    at = upload(app("pages/data.py"), ("third.npz", npz_bytes(32)))
    assert not at.error and not first.exists() and Path(at.session_state["dataset_source"]["path"]).is_file()


def test_a_cache_clear_leaves_the_servers_resources_and_a_sessions_upload(app, tmp_path, monkeypatch):
    """What Streamlit does on any client's clear_cache message (AppSession._handle_clear_cache_request) forgets no
    limit, no registry entry and no loaded dataset (tests/e2e/test_clear_cache.py sends the real message)."""
    import streamlit as st

    from ui import server

    at = upload(app("pages/data.py"), ("mine.npz", npz_bytes(30)))
    mine = Path(at.session_state["dataset_source"]["path"]).parent
    made = {name: getattr(server, name)() for name in ("job_pool", "fit_queue", "registry", "dataset_cache",
                                                        "run_cache", "encodings")}
    st.cache_data.clear()
    st.cache_resource.clear()
    assert all(getattr(server, name)() is value for name, value in made.items())
    assert json.dumps(at.session_state["dataset_source"], sort_keys=True) in server.dataset_cache()
    monkeypatch.setenv("VAE_UPLOADS_MAX_BYTES", str(int(1.5 * len(npz_bytes(30)))))  # room for one upload
    at = upload(app("pages/data.py"), ("theirs.npz", npz_bytes(31)))
    assert "space for uploaded data is full" in at.error[0].value and mine.exists()  # still the uploader's


def test_imported_runs_are_cleaned_by_size_renamed_ones_kept(app, tmp_path, monkeypatch):
    import ui.sharing

    model_config = ModelConfig(latent_dim=2, hidden_sizes=(8,))
    zip_bytes = export_zip(save_run(tmp_path / "made" / "tiny", VAE(model_config),
                                    RunConfig(model_config, TrainConfig(), {"kind": "digits", "name": "digits"})))
    monkeypatch.setenv("VAE_IMPORTED_MAX_BYTES", str(int(2.5 * len(zip_bytes) + 4096)))
    monkeypatch.setattr(ui.sharing, "session_is_alive", lambda sid: False)  # every importer has gone
    at = app("pages/runs.py")
    names = []
    for i in range(4):
        at.file_uploader(key="runs_upload").set_value((f"tiny{i}.zip", zip_bytes, "application/zip")).run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        names.append(" ".join(s.value for s in at.success).split("Imported as ", 1)[1].split()[0])
    runs = tmp_path / "runs"
    kept = [n for n in names if (runs / n).exists()]
    assert names[-1] in kept and len(kept) < len(names) and names[0] not in kept  # oldest first
    assert prune_imported(runs, lambda p: False, incoming=0) == []  # within budget now


def test_an_import_makes_room_for_what_the_zip_unpacks_to(tmp_path):
    """A run zip's JSON compresses well: the room an import asks for is the unpacked size, what the folder takes."""
    from vae_core.runs.archive import unpacked_bytes
    from ui.storage import folder_bytes

    model_config = ModelConfig(latent_dim=2, hidden_sizes=(8,))
    run_dir = save_run(tmp_path / "made" / "tiny", VAE(model_config),
                       RunConfig(model_config, TrainConfig(), {"kind": "digits", "name": "digits"}))
    data = export_zip(run_dir)
    assert unpacked_bytes(data) > len(data)
    assert unpacked_bytes(data) >= folder_bytes(run_dir)
    assert unpacked_bytes(b"not a zip") == len(b"not a zip")  # import_zip refuses it with its own message


def test_the_byte_budget_cache_keeps_the_newest_within_budget_and_loads_each_key_once():
    import threading

    from ui.byte_cache import ByteBudgetCache

    loads: list[str] = []

    def loader(key: str, size: int):
        def load():
            loads.append(key)
            time.sleep(0.05)  # two sessions asking at once must not both load
            return np.zeros(size, np.uint8)
        return load

    cache = ByteBudgetCache(budget=1000, size_of=lambda a: a.nbytes)
    threads = [threading.Thread(target=cache.get, args=("a", loader("a", 400))) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert loads == ["a"]
    cache.get("b", loader("b", 400))
    cache.get("a", loader("a", 400))  # a is now the most recently used
    cache.get("c", loader("c", 400))  # over budget: b (least recently used) goes
    assert "a" in cache and "c" in cache and "b" not in cache and cache.nbytes == 800
    cache.get("huge", loader("huge", 5000))  # the newest is kept however big, alone
    assert len(cache) == 1 and "huge" in cache
    few = ByteBudgetCache(budget=10**9, size_of=lambda a: a.nbytes, max_entries=2)
    for key in "xyz":
        few.get(key, loader(key, 1))
    assert len(few) == 2 and "x" not in few  # and never more entries than max_entries
    with pytest.raises(ValueError):
        cache.get("bad", lambda: (_ for _ in ()).throw(ValueError("bad file")))
    assert "bad" not in cache


def test_the_servers_datasets_stay_within_their_byte_budget(monkeypatch):
    from ui import server

    monkeypatch.setenv("VAE_DATASET_CACHE_BYTES", str(3 * 4 * 1000 * 16 * 16))  # three 1000-image 16x16 float32 sets
    server.dataset_cache.reset()
    try:
        for seed in range(6):
            server.dataset_for({"kind": "shapes", "n": 1000, "size": 16, "seed": seed})
            assert server.dataset_cache().nbytes <= 3 * 4 * 1000 * 16 * 16 + 1000 * (8 + 4 * 8)  # labels and factors
        assert len(server.dataset_cache()) < 6
    finally:
        server.dataset_cache.reset()
