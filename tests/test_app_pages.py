"""The app as a user drives it, through streamlit.testing.v1.AppTest: every page loads, training starts, grows,
pauses, resumes, takes a new lr and β mid-run, stops into an active run listed on Runs; bad uploads show errors."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from vae_core.architectures import ARCHS, architecture
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.likelihoods import LIKELIHOODS, likelihood
from vae_core.model import VAE
from vae_core.runs import export_zip, save_run
from harness.wait import wait_until
from tests.helpers import stop_session_jobs

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"pages/data.py": "Data", "pages/train.py": "Train", "pages/runs.py": "Runs", "pages/explore.py": "Explore"}


@pytest.fixture
def app(monkeypatch, tmp_path):
    """A factory of AppTests on app.py with an empty runs folder; stops any job they started."""
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_THREADS", "1")  # the test machine's cores are shared
    tests: list[AppTest] = []

    def make(page: str | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
        if page:
            at.switch_page(page).run()
        tests.append(at)
        return at

    yield make
    stop_session_jobs(tests)



def texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def start_training(at: AppTest, **settings) -> object:
    for key, value in settings.items():
        if key == "tf_lr":
            widget = at.select_slider(key=key)
        elif isinstance(value, str):
            widget = at.selectbox(key=key)
        else:
            widget = at.number_input(key=key)
        widget.set_value(value)
    at.button(key="train_start").click().run()
    assert not at.exception and not at.error, texts(at.error)
    return at.session_state["job"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_loads(app, page):
    at = app(page)
    assert not at.exception
    assert at.title[0].value.startswith(PAGES[page])
    assert "digits" in texts(at.sidebar.caption)  # the frame's sidebar shows the active dataset on every page


def test_data_page_shows_the_dataset(app):
    at = app("pages/data.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "1,797" and metrics["Shape (C×H×W)"] == "1×8×8" and metrics["Classes"] == "10"
    assert set(at.image[0].captions) <= set("0123456789") and len(at.image[0].captions) == 32  # samples, labelled
    assert at.get("vega_lite_chart")  # images per class


def test_the_data_pages_sources_are_the_engines_table(app):
    """The Source control offers one choice per source of vae_core's table, labelled from it; each source without
    files loads from its button at the options its form holds, the dataset load_source builds from its name."""
    from vae_core.data import SOURCES, load_source

    at = app("pages/data.py")
    assert at.segmented_control(key="data_kind").options == [s.label for s in SOURCES.values()]
    for source in (s for s in SOURCES.values() if not s.reads_files):
        at.segmented_control(key="data_kind").set_value(source.name).run()
        options = {o.name: o.low for o in source.options}  # the smallest: quick to generate
        for name, value in options.items():
            at.number_input(key=f"{source.name}_{name}").set_value(value)
        at.button(key=f"data_use_{source.name}").click().run()
        assert not at.exception and not at.error, texts(at.error)
        expected = load_source({"kind": source.name, **options})
        assert f"({expected.n:,} images)" in texts(at.success)
        assert load_source(at.session_state["dataset_source"]).source == expected.source
        assert {m.label: m.value for m in at.metric}["Images"] == f"{expected.n:,}"


def test_train_pause_resume_live_lr_and_beta_stop_then_runs(app):
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=2000, tf_lr_schedule="constant", tf_lr_warmup=0)  # rows then carry the lr set
    assert job.state == "running" and at.session_state["live_lr"] == TrainConfig.lr
    wait_until(lambda: job.history()["epochs"], what="the first epoch")
    at.run()
    assert not at.exception and len(at.get("plotly_chart")) >= 2  # loss curves and KL bars are drawn
    assert "running" in " ".join(p.text for p in at.progress)

    at.select_slider(key="live_lr").set_value(5e-4).run()
    at.number_input(key="live_beta").set_value(0.5).run()
    changed = wait_until(lambda: [r for r in job.history()["steps"] if r["lr"] == 5e-4 and r["beta"] == 0.5],
                       what="step rows with the new lr and β")
    before = [r for r in job.history()["steps"] if r["step"] < changed[0]["step"]]
    assert before and before[0]["lr"] == TrainConfig.lr and before[0]["beta"] == 1.0  # it really changed mid-run

    at.button(key="train_pause").click().run()
    assert job.state == "paused"
    step = job.progress().step
    at.run()  # a whole rerun later the job has not moved (one step may have been in flight)
    assert job.progress().step - step <= 1 and "paused" in " ".join(p.text for p in at.progress)
    at.button(key="train_resume").click().run()
    assert job.state == "running"
    wait_until(lambda: job.progress().step > step + 5, what="training to go on after resume")

    before = at.session_state["active_run"]
    at.button(key="train_stop").click().run()
    assert job.state == "stopped" and not at.exception
    assert at.session_state["active_run"] == before  # a stopped run does not replace the active model: it is offered
    assert job.run_dir.name not in texts(at.sidebar.caption)
    at.button(key="train_use_stopped").click().run()
    assert at.session_state["active_run"] == str(job.run_dir)  # the stopped run is the active model
    assert job.run_dir.name in texts(at.sidebar.caption)

    at.switch_page("pages/runs.py").run()
    assert not at.exception
    assert job.run_dir.name in at.dataframe[0].value["run"].tolist()
    at.session_state["active_run"] = None
    at.selectbox(key="runs_pick").set_value(job.run_dir.name).run()
    at.button(key="runs_activate").click().run()
    assert at.session_state["active_run"] == str(job.run_dir) and not at.exception


def test_the_latent_size_is_auto_unless_set_and_says_what_auto_means(app):
    at = app("pages/train.py")
    field = at.number_input(key="tf_latent")
    assert field.value is None and field.proto.placeholder == "auto: 8"  # the bundled 8×8 digits
    job = start_training(at, tf_epochs=1)
    assert job.model_config.latent_dim == 8
    assert job.join(timeout=60)


def test_the_form_offers_each_architecture_and_likelihood_with_what_it_is(app):
    at = app("pages/train.py")
    for key, names, describe in (("tf_arch", ARCHS, lambda n: architecture(n).description),
                                 ("tf_likelihood", LIKELIHOODS, lambda n: likelihood(n).description)):
        field = at.selectbox(key=key)
        assert list(field.options) == list(names)
        assert all(f"**{name}**: {describe(name)}" in field.proto.help for name in names)


def test_kl_vanishing_warning_and_one_click_remedy(app):
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=2, tf_beta=4.0)
    assert job.join(timeout=60) and job.state == "finished"
    at.run()
    assert "KL vanishing" in texts(at.warning)
    # the job has ended: the KL box shows no buttons of its own, the weak-model warning's remedies are the ones
    keys = {b.key for b in at.button}
    assert not {k for k in keys if k.startswith("remedy_")} and {"weak_train_beta", "weak_train_free_bits"} <= keys
    at.button(key="weak_train_beta").click().run()
    assert at.session_state["tf_beta"] == 2.0 and not at.exception
    at.button(key="weak_train_free_bits").click().run()
    assert at.session_state["tf_free_bits"] == 0.25


def test_the_kl_vanishing_remedies_are_buttons_while_the_job_runs(app):
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=300, tf_beta=8.0)
    wait_until(lambda: len(job.history()["epochs"]) >= 2 or not job.is_active, "two epochs", timeout=120)
    at.run()
    assert job.is_active and "KL vanishing" in texts(at.warning)
    at.button(key="remedy_beta").click().run()
    assert at.session_state["tf_beta"] == 4.0 and not at.exception


def test_validation_fraction_zero_trains_on_everything_and_every_page_copes(app):
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=2, tf_val=0.0)
    assert job.join(timeout=120) and job.state == "finished", job.error
    assert len(job.train_idx) == 1797 and len(job.val_idx) == 0
    at.run()
    assert not at.exception
    assert "No validation split" in texts(at.caption)  # the page says why there is no validation curve
    assert "Training images (top)" in texts(at.markdown)  # the reconstructions are of seen images, and say so
    assert at.session_state["active_run"] == str(job.run_dir)
    assert "no validation split" in texts(at.sidebar.caption)
    at.session_state["theory_open"] = True
    at.run()
    assert not at.exception and "seen in training" in texts(at.caption)
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("run")
    assert np.isnan(table.loc[job.run_dir.name, "val −ELBO"]) and table.loc[job.run_dir.name, "epochs"] == 2
    assert f"No validation −ELBO for {job.run_dir.name}" in texts(at.caption)  # the overlay says why its curve is absent
    at.switch_page("pages/explore.py").run()
    assert not at.exception


def test_bad_upload_shows_the_error_and_keeps_the_dataset(app):
    at = app("pages/data.py")
    at.segmented_control(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value(("broken.npy", b"\x93NUMPY garbage", "application/octet-stream"))
    at.run()
    assert not at.exception
    assert "broken.npy" in texts(at.error)  # the engine's error names the user's file
    assert at.session_state["dataset_source"] == "digits"  # the previous dataset stays active
    assert at.metric[0].value == "1,797"


def test_good_upload_becomes_the_active_dataset(app, tmp_path):
    buf = io.BytesIO()
    images = np.random.default_rng(0).integers(0, 256, (40, 12, 12), dtype=np.uint8)
    np.savez(buf, x=images, y=np.arange(40) % 4)
    at = app("pages/data.py")
    at.segmented_control(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value(("my data.npz", buf.getvalue(), "application/octet-stream")).run()
    assert not at.exception and not at.error, texts(at.error)
    source = at.session_state["dataset_source"]
    assert Path(source["path"]).name == "my-data.npz" and Path(source["path"]).is_relative_to(tmp_path / "runs")
    assert {m.label: m.value for m in at.metric}["Images"] == "40"


def nested_zip(skipped: dict[str, bytes] | None = None) -> bytes:
    """Eight 105-wide, 70-high PNGs in A/x, A/y, B/x, B/y (equal leaf names under two parents), plus `skipped`."""
    import zipfile

    from PIL import Image

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for i, folder in enumerate(["A/x", "A/y", "B/x", "B/y"] * 2):
            png = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (70, 105), dtype=np.uint8)).save(png, "PNG")
            zf.writestr(f"{folder}/{i}.png", png.getvalue())
        for name, payload in (skipped or {}).items():
            zf.writestr(name, payload)
    return out.getvalue()


def test_the_data_page_says_what_it_inferred_and_resizes_on_load(app):
    """A zip of nested class folders: the page shows N, C×H×W and the classes by their path, the loader's note on a
    skipped '../' entry and a resize suggestion; the file options (the sources table's) reload it at 64 pixels with
    the top folder as the class."""
    at = app("pages/data.py")
    at.segmented_control(key="data_kind").set_value("upload").run()
    payload = nested_zip({"../escape.png": b"outside"})
    at.file_uploader(key="data_upload").set_value(("nested.zip", payload, "application/zip")).run()
    assert not at.exception and not at.error, texts(at.error)
    assert "Inferred: 8 images, 1×70×105, 4 classes (A/x, A/y, B/x, B/y)" in texts(at.caption)
    notes = texts(at.info)
    assert "skipped 1 of 9 entries: 1 outside the archive ('..', an absolute path or a link)" in notes
    assert "The images are 70×105 pixels: set **Resize on load (longer side, pixels)** to 64" in notes

    at.number_input(key="path_resize").set_value(64)
    at.number_input(key="path_class_levels").set_value(1).run()
    assert not at.exception and not at.error, texts(at.error)
    source = at.session_state["dataset_source"]
    assert (source["resize"], source["class_levels"]) == (64, 1)
    assert "Inferred: 8 images, 1×43×64, 2 classes (A, B)" in texts(at.caption)
    assert "The images are" not in texts(at.info)


def test_a_zip_of_huge_pngs_is_refused_and_the_dataset_stays(app):
    """issue 23: a zip of eight valid 9000×9000 PNGs (a few KB each) is refused from the headers, fast, naming the
    file; the previous dataset stays active."""
    from tests.test_image_files import huge_png

    huge = huge_png(9000, 9000)
    payload = nested_zip({f"huge/{i}.png": huge for i in range(8)})
    at = app("pages/data.py")
    at.segmented_control(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value(("bombs.zip", payload, "application/zip")).run()
    assert not at.exception
    assert "bombs.zip:huge/0.png: too large to decode: this 9000×9000 image" in texts(at.error)
    assert at.session_state["dataset_source"] == "digits" and at.metric[0].value == "1,797"


def test_runs_upload_rename_delete(app, tmp_path):
    model_config = ModelConfig(latent_dim=2, hidden_sizes=(8,))
    source = save_run(tmp_path / "made" / "tiny", VAE(model_config), RunConfig(model_config, TrainConfig(),
                      {"kind": "digits", "name": "digits"}), metrics={"epochs_done": 0})
    at = app("pages/runs.py")
    upload = at.file_uploader(key="runs_upload")
    upload.set_value(("bad.zip", b"not a zip", "application/zip")).run()
    assert "bad.zip" in texts(at.error) and not at.exception
    at.file_uploader(key="runs_upload").set_value(("tiny.zip", export_zip(source), "application/zip")).run()
    assert "Imported as tiny" in texts(at.success) and not at.exception
    assert "tiny" in at.dataframe[0].value["run"].tolist()

    at.selectbox(key="runs_pick").set_value("tiny").run()
    at.text_input(key="runs_new_name").input("../../escape me").run()
    at.button(key="runs_rename").click().run()
    assert not at.exception and "escape-me" in at.dataframe[0].value["run"].tolist()
    assert (tmp_path / "runs" / "escape-me").is_dir() and not (tmp_path / "escape me").exists()

    assert at.button(key="runs_delete").disabled  # nothing is deleted without the confirmation
    at.checkbox(key="runs_confirm_delete").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception and not (tmp_path / "runs" / "escape-me").exists()


def test_a_full_job_pool_refuses_with_a_clear_message(app):
    from ui.server import job_pool
    from vae_core.data import load_digits
    from vae_core.jobs import TrainingJob

    pool, tiny = job_pool(), load_digits().subset(np.arange(64))
    others = [TrainingJob(tiny, ModelConfig(hidden_sizes=(8,)), TrainConfig(epochs=10**6, batch_size=32), threads=1)
              for _ in range(pool.max_jobs)]
    try:
        for i, job in enumerate(others):
            pool.start(f"another-session-{i}", job)
        at = app("pages/train.py")
        at.button(key="train_start").click().run()
        assert not at.exception and "limit" in texts(at.error)
        assert "job" not in at.session_state  # nothing started, nothing half-registered
    finally:
        for i, job in enumerate(others):
            pool.stop_owner(f"another-session-{i}")
            job.join(timeout=30)


def test_theory_shows_each_formula_with_the_active_models_numbers(app):
    from ui.server import BUNDLED_RUN
    from ui.theory import theory_numbers

    if not (BUNDLED_RUN / "model.safetensors").exists():
        pytest.skip("no bundled run to explain")
    at = app("pages/train.py")
    assert at.session_state["active_run"] == str(BUNDLED_RUN)
    assert len(at.latex) == 0  # closed: nothing computed or sent
    at.session_state["theory_open"] = True  # what opening the expander does
    at.run()
    assert len(at.latex) >= 5 and not at.exception  # ELBO, L_k, closed-form KL, reparameterization, free bits
    metrics = {m.label: float(m.value) for m in at.metric if m.label in ("ELBO", "E_q[log p(x|z)]", "KL(q(z|x) ‖ p(z))")}
    assert metrics["ELBO"] == pytest.approx(metrics["E_q[log p(x|z)]"] - metrics["KL(q(z|x) ‖ p(z))"], abs=0.02)
    mtime = (BUNDLED_RUN / "model.safetensors").stat().st_mtime
    numbers = theory_numbers(str(BUNDLED_RUN), mtime, '{"kind": "digits"}')
    assert numbers["iwae"] >= numbers["elbo"]  # L_k is the tighter bound
    assert abs(numbers["kl_closed"] - numbers["kl_mc"]) < 5 * numbers["kl_mc_se"]  # closed form = Monte Carlo


def test_icons_are_material_symbols_not_emoji():
    """Emoji show as empty boxes where no emoji font is installed; Streamlit serves its Material Symbols itself."""
    import re

    # ★ (U+2605) stays: a text symbol every common font has, drawn on the map too
    emoji = re.compile("[\U0001F000-\U0001FAFF\u2600-\u2604\u2606-\u26FF\u2700-\u27BF\uFE0F]")
    sources = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
    found = {p.name: emoji.findall(p.read_text()) for p in sources}
    assert not {k: v for k, v in found.items() if v}, "emoji in the UI's sources"
    assert re.findall(r'icon="(:material/\w+:)"', (ROOT / "app.py").read_text()), "the pages have Material icons"


def test_the_first_page_imports_no_pandas_plotly_or_sklearn_and_the_warmup_does():
    """Cold start: Explore (the first page) runs without importing pandas, plotly's figures, scikit-learn (~2 s of
    imports on this machine; plotly itself loads lazily) or the training engine; the warm-up started after the first
    page imports them (and openTSNE, t-SNE's)."""
    import subprocess
    import sys

    code = """
import sys
import streamlit, torch
import ui.explore.data, ui.explore.latent, ui.explore.projection, ui.explore.views, ui.explore.link, ui.explore.state
from ui import access, diagnosis_ui, frame, sidebar, state, theory  # everything app.py and pages/explore.py import
print(sorted(m for m in ("pandas", "sklearn", "scipy", "vae_core.jobs") if m in sys.modules))
from ui.warmup import warm_imports
warm_imports().join(120)
print(sorted(m for m in ("pandas", "sklearn.manifold", "ui.charts", "openTSNE") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    before, after = out.stdout.strip().splitlines()[-2:]
    assert before == "[]", f"the first page imported {before}"
    assert after == "['openTSNE', 'pandas', 'sklearn.manifold', 'ui.charts']"


def test_a_script_run_that_needs_pandas_waits_for_the_warm_up_imports(monkeypatch):
    """settle() holds a script run until the warm-up thread has finished importing (two threads importing pandas
    and pyarrow in opposite orders can leave one with a partly initialised module), and returns at once after."""
    import threading

    from ui import warmup

    release, entered = threading.Event(), threading.Event()

    def slow_imports():
        entered.set()
        release.wait(30)

    monkeypatch.setattr(warmup, "_import_all", slow_imports)
    monkeypatch.setattr(warmup, "_thread", None)
    warmup.warm_imports()
    assert entered.wait(30)
    waiter = threading.Thread(target=warmup.settle)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # still importing: the script run waits
    release.set()
    waiter.join(30)
    assert not waiter.is_alive()
    warmup.settle()  # finished: no wait
