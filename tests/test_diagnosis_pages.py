"""The weak-model warning as a user meets it (AppTest): Train shows it once a weak job has ended, and keeps showing
it; its remedy sets the form; Explore shows it for the weak active model, and its remedy opens Train with the form
set; the bundled digits model gets no warning."""
from __future__ import annotations

import math

from tests.test_app_pages import app, start_training, texts  # noqa: F401  (app is a fixture)
from vae_core.config import TrainConfig
from vae_core.diagnosis import WARMUP_MULTIPLE

WEAK = "is a weak model"


def weak_job(at):
    """1 epoch of the bundled digits at the recipe's batch: 7 steps, inside the recipe's learning-rate warm-up (the
    warm-up the recipe sets for its own, longer training)."""
    job = start_training(at, tf_epochs=1)
    assert job.join(timeout=60) and job.state == "finished", job.error
    at.run()
    assert not at.exception
    return job


def test_train_says_a_finished_model_is_weak_and_its_remedy_sets_the_form(app):
    at = app("pages/train.py")
    job = weak_job(at)
    warning = texts(at.warning)
    assert job.train_config.lr_warmup_steps > 7
    assert f"{job.run_dir.name} {WEAK}" in warning and "inside its warm-up: 7 steps" in warning
    assert "barely better than the mean image" in warning
    epochs = math.ceil(WARMUP_MULTIPLE * job.train_config.lr_warmup_steps / 7)
    at.button(key="weak_train_longer").click().run()
    assert not at.exception and at.session_state["tf_epochs"] == epochs
    assert f"epochs = {epochs}" in texts(at.success)  # the note beside the form says what was set
    at.button(key="weak_train_likelihood").click().run()
    assert at.session_state["tf_likelihood"] == "gaussian-learned"
    at.switch_page("pages/data.py").run()
    at.switch_page("pages/train.py").run()  # later: still said while the model is shown, not only when the job ends
    assert WEAK in texts(at.warning)


def test_explore_says_the_active_model_is_weak_and_a_remedy_opens_train_set(app):
    at = app("pages/train.py")
    job = weak_job(at)
    at.switch_page("pages/explore.py").run()
    assert not at.exception and at.session_state["active_run"] == str(job.run_dir)
    assert f"{job.run_dir.name} {WEAK}" in texts(at.warning)
    at.button(key="weak_explore_longer").click().run()
    assert not at.exception
    assert at.title[0].value.startswith("Train")  # the remedy took the user to Train…
    epochs = math.ceil(WARMUP_MULTIPLE * job.train_config.lr_warmup_steps / 7)
    assert at.number_input(key="tf_epochs").value == epochs  # …with the form set
    assert f"epochs = {epochs}" in texts(at.success)


def test_the_bundled_model_gets_no_warning(app):
    at = app("pages/explore.py")
    assert not at.exception and "digits-default" in texts(at.caption)
    assert WEAK not in texts(at.warning)
    at.switch_page("pages/train.py").run()
    assert not at.exception and WEAK not in texts(at.warning)


def test_every_field_a_remedy_sets_is_a_config_field_and_a_form_widget():
    """A remedy names config fields; the Train form has a widget for each (else a click would set nothing)."""
    import dataclasses

    from ui.remedies import FORM_KEYS
    from ui.training_ui import FORM_DEFAULTS, RECIPE_FIELDS
    from vae_core.config import ModelConfig
    from vae_core.diagnosis import kl_remedies

    fields = {f.name for f in dataclasses.fields(ModelConfig)} | {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(FORM_KEYS) <= fields and set(FORM_KEYS.values()) <= set(FORM_DEFAULTS) | set(RECIPE_FIELDS)
    assert all(set(r.settings) <= set(FORM_KEYS) for r in kl_remedies(TrainConfig(), 1000))
