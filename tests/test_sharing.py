"""The sharing model with two AppTest sessions, A and B, on one server's runs folder: B cannot rename or delete a run
A created, A is training into, or A has active (not even by forcing the buttons), the Runs page says why, and
nothing is lost (every file byte-identical); runs without a living creator are changeable on loopback only; another
session's upload stays private."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.local_script_runner import LocalScriptRunner

from harness.wait import wait_until
from tests.helpers import serving_beyond_loopback, stop_session_jobs
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.model import VAE
from vae_core.runs import export_zip, save_run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def session(monkeypatch, tmp_path):
    """session(name) -> an AppTest on the Runs page whose Streamlit session id is name (AppTest gives every session
    the same id, so the fixture sets it per AppTest from its session state)."""
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_THREADS", "1")
    original = LocalScriptRunner.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self._session_id = self.session_state["test_session"]

    monkeypatch.setattr(LocalScriptRunner, "__init__", init)
    made: list[AppTest] = []

    def make(name: str, page: str = "pages/runs.py") -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.session_state["test_session"] = name
        at.run().switch_page(page).run()
        made.append(at)
        return at

    yield make
    stop_session_jobs(made)


def tiny_zip(tmp_path: Path, data: dict | None = None) -> bytes:
    model_config = ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_sizes=(8,))
    run = save_run(tmp_path / "made" / "tiny", VAE(model_config),
                   RunConfig(model_config, TrainConfig(), data or {"kind": "digits", "name": "digits"}))
    return export_zip(run)


def import_run(at: AppTest, zip_bytes: bytes) -> str:
    at.file_uploader(key="runs_upload").set_value(("tiny.zip", zip_bytes, "application/zip")).run()
    message = " ".join(s.value for s in at.success)
    assert "Imported as" in message and not at.exception, message
    return message.split("Imported as ", 1)[1].split()[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def pick(at: AppTest, name: str) -> AppTest:
    return at.selectbox(key="runs_pick").set_value(name).run()


def refusal(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def locked(at: AppTest) -> bool:
    """Whether the Runs page offers no way to rename or delete the selected run."""
    return all(at.get(kind)[0].disabled if kind == "text_input" else at.button(key=k).disabled
               for kind, k in (("text_input", None), ("button", "runs_rename"), ("button", "runs_delete")))


def test_b_cannot_rename_or_delete_a_run_a_created(session, tmp_path):
    a = session("A")
    name = import_run(a, tiny_zip(tmp_path))
    run_dir = tmp_path / "runs" / name
    before = snapshot(run_dir)

    b = pick(session("B"), name)
    assert "Another session created this run" in refusal(b) and locked(b) and not b.exception
    assert snapshot(run_dir) == before  # nothing lost

    pick(a.run(), name)  # A itself may: its own run, in use by nobody else
    a.text_input(key="runs_new_name").input("mine").run()
    a.button(key="runs_rename").click().run()
    assert not a.error and snapshot(tmp_path / "runs" / "mine") == before


def test_b_cannot_delete_its_own_run_while_a_has_it_active(session, tmp_path):
    b = session("B")
    name = import_run(b, tiny_zip(tmp_path))
    before = snapshot(tmp_path / "runs" / name)
    pick(b, name).checkbox(key="runs_confirm_delete").check().run()  # B's page offers Delete, and stays open...
    assert not locked(b)
    a = pick(session("A"), name)
    a.button(key="runs_activate").click().run()  # ...while A makes the run its active model
    assert a.session_state["active_run"].endswith(name)

    b.button(key="runs_delete").click().run()  # the stale page's Delete: the server checks again
    assert "was not deleted. Another session has this run as its active model" in " ".join(e.value for e in b.error)
    assert snapshot(tmp_path / "runs" / name) == before
    assert "Another session has this run as its active model" in refusal(b) and locked(b)

    pick(a.run(), "digits-default (bundled)").button(key="runs_activate").click().run()  # A moves on
    pick(b.run(), name)
    assert b.checkbox(key="runs_confirm_delete").check().run().button(key="runs_delete").click().run()
    assert not b.error and not (tmp_path / "runs" / name).exists()


def test_nobody_renames_or_deletes_a_run_while_it_trains(session, tmp_path):
    a = session("A", "pages/train.py")
    a.number_input(key="tf_epochs").set_value(5000)
    a.button(key="train_start").click().run()
    job = a.session_state["job"]
    wait_until(lambda: (job.run_dir / "model.safetensors").exists(), "the job's first save", timeout=120)
    name = job.run_dir.name

    b = pick(session("B"), name)
    assert "being trained by another session" in refusal(b) and locked(b)
    pick(a.switch_page("pages/runs.py").run(), name)
    assert "being trained by this session" in refusal(a) and locked(a)
    assert job.is_active and job.run_dir.is_dir()


def test_runs_without_a_living_creator_change_on_loopback_only(session, tmp_path):
    model_config = ModelConfig(latent_dim=2, hidden_sizes=(8,))
    save_run(tmp_path / "runs" / "old", VAE(model_config), RunConfig(model_config, TrainConfig(),
             {"kind": "digits", "name": "digits"}))  # there before the server: nobody created it here
    with serving_beyond_loopback():
        b = pick(session("B"), "old")
        assert "on a shared server, remove it from the runs folder on disk" in refusal(b) and locked(b)
        assert (tmp_path / "runs" / "old" / "model.safetensors").exists()
    pick(b.run(), "old")  # loopback: one person's laptop (B has it active itself, which does not hold it)
    assert not locked(b)
    b.checkbox(key="runs_confirm_delete").check().run().button(key="runs_delete").click().run()
    assert not b.error and not (tmp_path / "runs" / "old").exists()


def test_another_sessions_upload_stays_private(session, tmp_path):
    buf = io.BytesIO()
    np.savez(buf, x=np.random.default_rng(0).integers(0, 256, (40, 12, 12), dtype=np.uint8))
    a = session("A", "pages/data.py")
    a.segmented_control(key="data_kind").set_value("upload").run()
    a.file_uploader(key="data_upload").set_value(("private.npz", buf.getvalue(), "application/octet-stream")).run()
    source = a.session_state["dataset_source"]
    assert not a.exception and Path(source["path"]).is_file()
    model_config = ModelConfig(input_shape=(1, 12, 12), latent_dim=2, hidden_sizes=(8,))
    run = save_run(tmp_path / "runs" / "on-private", VAE(model_config),  # a run trained on A's upload
                   RunConfig(model_config, TrainConfig(), {**source, "name": "private"}))

    for at in (a, session("B")):
        at.session_state["dataset_source"] = "digits"
        at.session_state["active_run"] = str(run)
    a.switch_page("pages/explore.py").run()
    b = session("B", "pages/explore.py")
    b.session_state["active_run"] = str(run)
    b.run()
    assert not a.exception and not b.exception
    assert "40 images encoded" in " ".join(c.value for c in a.caption)  # A explores its own upload
    blocked = " ".join(i.value for i in b.info)
    assert "expects 1×12×12 images" in blocked and not any("images encoded" in c.value for c in b.caption)
