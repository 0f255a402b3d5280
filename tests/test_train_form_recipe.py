"""The Train form starts from the active dataset's recipe (vae_core/recipe.py): it says "auto: ..." and why, its
fields follow when the dataset changes, and a field the user set keeps the user's value."""
from __future__ import annotations

from tests.test_app_pages import app, start_training, texts  # noqa: F401 (app is the AppTest fixture)
from vae_core.recipe import recipe_for

SMALL_SHAPES = {"kind": "shapes", "n": 1000, "size": 16, "seed": 0}  # 900 training images: a smaller batch


def test_the_form_says_auto_follows_the_dataset_and_keeps_the_users_edits(app):
    at = app("pages/train.py")
    digits = recipe_for((1, 8, 8), 1797, 0.1)
    assert f"auto: {digits.summary()} — {digits.why}" in texts(at.caption)
    assert (at.selectbox(key="tf_batch").value, at.select_slider(key="tf_lr").value,
            at.number_input(key="tf_epochs").value, at.number_input(key="tf_lr_warmup").value) == (
        digits.batch_size, digits.lr, digits.epochs, digits.lr_warmup_steps)
    job = start_training(at, tf_epochs=1)  # the user's own length; everything else as the recipe says
    assert (job.train_config.epochs, job.train_config.batch_size, job.train_config.lr) == (1, digits.batch_size,
                                                                                            digits.lr)
    assert at.selectbox(key="tf_output_bias").value == job.train_config.output_bias == digits.output_bias
    assert job.join(timeout=60)
    at.session_state["dataset_source"] = SMALL_SHAPES
    at.run()
    shapes = recipe_for((1, 16, 16), 1000, 0.1)
    assert shapes.batch_size != digits.batch_size  # the case shows the form following
    assert at.selectbox(key="tf_batch").value == shapes.batch_size
    assert at.number_input(key="tf_lr_warmup").value == shapes.lr_warmup_steps
    assert at.number_input(key="tf_epochs").value == 1  # the user's edit wins
    assert f"auto: {shapes.summary()}" in texts(at.caption) and "Yours instead: epochs." in texts(at.caption)


def test_choosing_an_architecture_brings_its_own_settings_unless_the_user_set_them(app):
    at = app("pages/train.py")
    mlp_conv = recipe_for((1, 8, 8), 1797, 0.1, arch="mlp-conv")
    assert (mlp_conv.batch_size, mlp_conv.lr) != (recipe_for((1, 8, 8), 1797, 0.1).batch_size,
                                                  recipe_for((1, 8, 8), 1797, 0.1).lr)  # the case shows the form following
    job = start_training(at, tf_arch="mlp-conv", tf_epochs=1)  # chosen and started at once, as a user may
    assert (job.model_config.arch, job.train_config.batch_size, job.train_config.lr, job.train_config.adam_beta2) == (
        "mlp-conv", mlp_conv.batch_size, mlp_conv.lr, mlp_conv.adam_beta2)
    assert at.selectbox(key="tf_adam_beta2").value == 0.99
    assert job.join(timeout=120)
    assert f"auto: {mlp_conv.summary()}" in texts(at.caption)
    job = start_training(at, tf_arch="mlp", tf_lr=1e-3)  # back to the MLP with the user's own rate: the rate stays,
    mlp = recipe_for((1, 8, 8), 1797, 0.1)                # the batch follows the architecture again
    assert (job.model_config.arch, job.train_config.batch_size, job.train_config.lr) == ("mlp", mlp.batch_size, 1e-3)
    assert job.train_config.adam_beta2 == mlp.adam_beta2 == 0.999  # torch's, as the MLP's recipe has it
    job.stop()


def test_the_schedule_help_says_what_cosine_does_to_the_chosen_rate(app):
    at = app("pages/train.py")
    text = at.selectbox(key="tf_lr_schedule").proto.help
    assert "half of it halfway through, 0 at the last step" in text and "constant" in text


def test_the_output_bias_start_is_a_setting_the_job_takes(app):
    """The pytorch/examples way (torch's initialisation) is one choice away; the help says what each does."""
    at = app("pages/train.py")
    assert "training images' mean" in at.selectbox(key="tf_output_bias").proto.help
    job = start_training(at, tf_output_bias="torch", tf_epochs=1)
    assert job.train_config.output_bias == "torch"
    assert "Yours instead: epochs, output bias." in texts(at.caption)
    assert job.join(timeout=60)
