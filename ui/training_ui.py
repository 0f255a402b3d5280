"""The Train page's pieces: the settings form, the job controls (pause, resume, stop, live lr and β), the live view."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st
import torch

from ui.charts import history_frame, kl_bars_figure, kl_heatmap_figure, loss_figure
from ui.diagnosis_ui import weak_model_ui
from ui.epoch_map_ui import epoch_map_ui
from ui.exports import epoch_reconstructions_download_ui
from ui.images import grid
from ui.remedies import remedy_buttons_ui
from ui.server import job_pool, runs_root, session_id
from ui.sharing import note_created
from ui.state import STOPPED_RUN, active_run, adopt_finished_job, run_dataset, set_active_run
from vae_core.architectures import ARCHS, architecture
from vae_core.config import LR_SCHEDULES, OUTPUT_BIASES, ModelConfig, TrainConfig
from vae_core.data import Dataset, preview_indices, split_indices
from vae_core.diagnosis import kl_remedies
from vae_core.epoch_maps import map_rows
from vae_core.kl_history import kl_over_time
from vae_core.likelihoods import LIKELIHOODS, likelihood
from vae_core.metrics import KL_COLLAPSE_NATS, collapsed_dims, kl_vanishing
from vae_core.model import VAE
from vae_core.recipe import LR_GRID, Recipe, default_latent_dim, recipe_for
from vae_core.runs import Run, unique_run_name
from vae_core.runs.kept_data import keep
from vae_core.jobs import ProcessJob, refuse_untrainable, warm_up

LIVE_REFRESH_S = 1.0  # how often the live view redraws while a job runs
HIDDEN_SIZES = [32, 64, 128, 256, 512, 1024]
BATCH_SIZES = [16, 32, 64, 128, 256, 512]
ADAM_BETA2S = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999]
N_FIXED, N_PRIOR = 8, 16  # validation images reconstructed, prior samples decoded
ACTIVE = ("running", "paused", "stopping")
FORM_DEFAULTS = {  # widget key -> default, taken from the engine's configs (the latent size: None is the recipe's)
    "tf_latent": None, "tf_likelihood": ModelConfig.likelihood, "tf_beta": float(TrainConfig.beta),
    "tf_warmup": TrainConfig.warmup_steps, "tf_free_bits": float(TrainConfig.free_bits), "tf_seed": TrainConfig.seed,
    "tf_val": TrainConfig.val_fraction,
}
RECIPE_FIELDS = {  # widget key -> (the Recipe's field, the form's label): defaults that follow the active dataset
    "tf_arch": ("arch", "architecture"), "tf_hidden": ("hidden", "hidden size"), "tf_batch": ("batch_size", "batch"),
    "tf_lr": ("lr", "learning rate"), "tf_lr_schedule": ("lr_schedule", "schedule"),
    "tf_lr_warmup": ("lr_warmup_steps", "warm-up"), "tf_epochs": ("epochs", "epochs"),
    "tf_output_bias": ("output_bias", "output bias"), "tf_adam_beta2": ("adam_beta2", "Adam β₂"),
}
SCHEDULE_HELP = ("**cosine**: after the warm-up the rate falls from the chosen one along half a cosine: half of it "
                 "halfway through, 0 at the last step of the last epoch. **constant**: the chosen rate throughout "
                 "(after the warm-up). The pytorch/examples recipe is constant with no warm-up.")
OUTPUT_BIAS_HELP = ("Where the decoder's output bias starts. **data-mean**: where the model's mean image is the "
                    "training images' mean, per pixel: the first epochs learn the "
                    "images rather than their background (on real MNIST 5k the default recipe ends 3-4 nats better "
                    "in the same time). **torch**: torch's own initialisation, as pytorch/examples.")
NO_VALIDATION = ("No validation split (validation fraction 0): every image trains and the per-epoch validation "
                 "metrics are skipped. Measure held-out quality with `python -m vae_core.evaluate RUN --data FILE`.")


# --------------------------------------------------------------------------- the settings form

def init_form_state() -> None:
    """Put the form's defaults in session state once, so remedies can change them before the widgets draw."""
    for key, value in FORM_DEFAULTS.items():
        st.session_state.setdefault(key, value)
    warm_up()  # the training workers' fork server starts while the user reads the form (once per server)


def follow_recipe(dataset: Dataset) -> Recipe:
    """The active dataset's recipe (vae_core/recipe.py), for the architecture chosen in the form when it is not the
    recipe's own. A field still at the last recipe's value (or never set) takes this one's, so the defaults follow the
    dataset and the architecture; a field the user changed keeps the user's value."""
    s = st.session_state
    recipe = recipe_for(dataset.shape, dataset.n, float(s.tf_val))
    if s.get("tf_arch") in ARCHS and s.tf_arch != recipe.arch:  # a chosen architecture trains at its own settings
        recipe = recipe_for(dataset.shape, dataset.n, float(s.tf_val), arch=s.tf_arch)
    before = s.get("tf_auto", {})
    for key, (field, _) in RECIPE_FIELDS.items():
        if key not in s or s[key] == before.get(key):
            s[key] = getattr(recipe, field)
    s.tf_auto = {key: getattr(recipe, field) for key, (field, _) in RECIPE_FIELDS.items()}
    return recipe


def recipe_caption(recipe: Recipe) -> str:
    """'auto: ...' — the recipe, why, and which of its settings the user's own replace."""
    s = st.session_state
    own = [label for key, (field, label) in RECIPE_FIELDS.items() if s.get(key) != getattr(recipe, field)]
    if s.get("tf_latent") is not None:
        own.append("latent dimensions")
    return (f"auto: {recipe.summary()} — {recipe.why}" + (f" Yours instead: {', '.join(own)}." if own else ""))


def settings_form_ui(dataset: Dataset) -> tuple[ModelConfig, TrainConfig] | None:
    """The model and training settings; returns the configs when Start is pressed (None otherwise or if invalid)."""
    keep = dict(persist_state="session")
    recipe = follow_recipe(dataset)
    with st.form("train_form", border=False):
        st.caption(recipe_caption(recipe))
        st.markdown("**Model**")
        st.selectbox("Architecture", ARCHS, key="tf_arch",
                     help="  \n".join(f"**{name}**: {architecture(name).description}" for name in ARCHS), **keep)
        st.number_input("Latent dimensions", 1, 128, step=1, key="tf_latent",
                        placeholder=f"auto: {recipe.latent_dim}",
                        help=f"Empty: the recipe's size for this data's {dataset.shape[1]}×{dataset.shape[2]} images "
                             "(vae_core/recipe.py). More dimensions than the data needs collapse onto the prior (shown "
                             "on the KL chart).", **keep)
        st.selectbox("Hidden size", HIDDEN_SIZES, key="tf_hidden", **keep)
        st.selectbox("Likelihood p(x|z)", LIKELIHOODS, key="tf_likelihood",
                     help="  \n".join(f"**{name}**: {likelihood(name).description}" for name in LIKELIHOODS), **keep)
        st.markdown("**Objective**")
        st.number_input("β (KL weight)", 0.0, 50.0, step=0.1, key="tf_beta", help="1 is the true ELBO", **keep)
        st.number_input("KL warm-up (steps)", 0, 1_000_000, step=50, key="tf_warmup",
                        help="β ramps linearly from 0 over this many steps", **keep)
        st.number_input("Free bits (nats per dimension)", 0.0, 5.0, step=0.05, key="tf_free_bits",
                        help="KL below this floor is not penalised", **keep)
        st.markdown("**Optimisation**")
        st.select_slider("Learning rate", LR_GRID, key="tf_lr", format_func=lambda v: f"{v:g}",
                         help="The peak rate: the schedule scales it", **keep)
        st.selectbox("Learning-rate schedule", LR_SCHEDULES, key="tf_lr_schedule",
                     help=SCHEDULE_HELP, **keep)
        st.number_input("Learning-rate warm-up (steps)", 0, 1_000_000, step=50, key="tf_lr_warmup",
                        help="The rate ramps linearly from ~0 over this many steps", **keep)
        st.selectbox("Output bias starts at", OUTPUT_BIASES, key="tf_output_bias", help=OUTPUT_BIAS_HELP, **keep)
        st.selectbox("Adam β₂", sorted({*ADAM_BETA2S, recipe.adam_beta2}), key="tf_adam_beta2",
                     format_func=lambda v: f"{v:g}",
                     help="Adam's second-moment decay: how many steps its scale of each gradient remembers "
                          "(~1 / (1 − β₂)). torch's default is 0.999; mlp-conv trains best at 0.99", **keep)
        st.selectbox("Batch size", BATCH_SIZES, key="tf_batch", **keep)
        st.number_input("Epochs", 1, 10_000, step=1, key="tf_epochs", **keep)
        st.number_input("Seed", 0, 2**31 - 1, step=1, key="tf_seed", **keep)
        st.number_input("Validation fraction", 0.0, 0.5, step=0.05, key="tf_val", format="%.2f",
                        help="Images held out for the per-epoch validation −ELBO. 0 trains on every image and skips "
                             "validation (evaluate on a held-out file with `python -m vae_core.evaluate`)", **keep)
        submitted = st.form_submit_button("Start training", key="train_start", type="primary",
                                          icon=":material/play_arrow:", width="stretch")
    limit = job_pool().max_job_s
    st.caption(f"One job per session, {job_pool().max_jobs} at once on this server"
               + (f"; each stops after {limit / 60:g} min (saved)." if limit else "."))
    if not submitted:
        return None
    try:
        return form_configs(dataset)
    except ValueError as exc:
        st.error(f"Invalid settings: {exc}")
        return None


def form_configs(dataset: Dataset) -> tuple[ModelConfig, TrainConfig]:
    """The configs the form describes, for this dataset's image shape (ValueError on an invalid combination)."""
    s = st.session_state
    latent = default_latent_dim(dataset.shape) if s.tf_latent is None else int(s.tf_latent)
    model = ModelConfig(input_shape=dataset.shape, latent_dim=latent, hidden_sizes=(int(s.tf_hidden),),
                        arch=s.tf_arch, likelihood=s.tf_likelihood)
    train = TrainConfig(epochs=int(s.tf_epochs), batch_size=int(s.tf_batch), lr=float(s.tf_lr),
                        lr_schedule=s.tf_lr_schedule, lr_warmup_steps=int(s.tf_lr_warmup),
                        output_bias=s.tf_output_bias, adam_beta2=float(s.tf_adam_beta2), beta=float(s.tf_beta),
                        warmup_steps=int(s.tf_warmup), free_bits=float(s.tf_free_bits), seed=int(s.tf_seed),
                        val_fraction=float(s.tf_val))
    return model, train


def start_job(dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig) -> ProcessJob:
    """Start training in the background under the server's job limit (PoolFull propagates); keep it in the session."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = unique_run_name(runs_root(), f"{dataset.name}-{model_config.arch}-z{model_config.latent_dim}-{stamp}")
    dataset = keep(dataset, runs_root())  # the run keeps a copy of data read from files (vae_core/runs/kept_data.py)
    job = ProcessJob(dataset, model_config, train_config, run_dir=runs_root() / name)  # a worker process per job
    note_created(job.run_dir)  # this session may rename and delete it (ui/sharing.py)
    job_pool().start(session_id(), job)
    st.session_state.job = job
    st.session_state.live_lr, st.session_state.live_beta = train_config.lr, train_config.beta
    return job


# --------------------------------------------------------------------------- controls

def controls_ui(job: ProcessJob | None) -> None:
    """Pause / Resume / Stop, and the learning rate and β that apply to the running job at once."""
    state = job.state if job is not None else None
    cols = st.columns([1.1, 1.25, 1, 2.4, 1.6], vertical_alignment="bottom")
    cols[0].button("Pause", key="train_pause", icon=":material/pause:", disabled=state != "running",
                   on_click=lambda: job.pause(), width="stretch")
    cols[1].button("Resume", key="train_resume", icon=":material/play_arrow:", disabled=state != "paused",
                   on_click=lambda: job.resume(), width="stretch")
    cols[2].button("Stop", key="train_stop", icon=":material/stop:", disabled=state not in ("running", "paused"),
                   on_click=_stop, args=(job,), width="stretch")
    live = state in ("running", "paused")
    if "live_lr" not in st.session_state or st.session_state.live_lr not in LR_GRID:
        st.session_state.live_lr = st.session_state.get("tf_lr", TrainConfig.lr)
    st.session_state.setdefault("live_beta", float(st.session_state.get("tf_beta", TrainConfig.beta)))
    cols[3].select_slider("Learning rate (live)", LR_GRID, key="live_lr", format_func=lambda v: f"{v:g}",
                          disabled=not live, on_change=lambda: job.set_lr(st.session_state.live_lr),
                          help="Applies to the running job from its next step")
    cols[4].number_input("β (live)", 0.0, 50.0, step=0.1, key="live_beta", disabled=not live,
                         on_change=lambda: job.set_beta(st.session_state.live_beta),
                         help="Applies to the running job from its next step (warm-up still ramps to it)")


def _stop(job: ProcessJob) -> None:
    """Stop, wait for the final save, and make the run the active model."""
    job.stop()
    job.join(timeout=30)
    adopt_finished_job()


# --------------------------------------------------------------------------- the live view

def live_ui(job: ProcessJob | None, run: Run | None) -> None:
    """Curves, KL per dimension, progress and images; redrawn every LIVE_REFRESH_S only while a job is active."""
    active = job is not None and job.is_active
    st.fragment(run_every=LIVE_REFRESH_S if active else None)(_live_body)(job, run, active)


def _live_body(job: ProcessJob | None, run: Run | None, was_active: bool) -> None:
    if st.session_state.pop("remedy_applied", None):
        st.rerun()  # the form lives outside this fragment: redraw the page so it shows the new settings
    if job is not None:
        steps, epochs, progress, version = _job_history(job)
        if was_active and progress.state not in ACTIVE:
            st.rerun()  # the job ended: redraw the page (buttons, sidebar's active model)
        _progress_ui(progress)
        stopped_run_ui(job)
        why = job_pool().why_stopped(session_id(), job)
        if why:
            st.warning(why, icon=":material/timer_off:")
        name, model_key = job.run_dir.name if job.run_dir else "training", (id(job), version)
        shown, kind = preview_indices(job.dataset.n, job.train_config.val_fraction, job.train_config.seed)
        fixed, n_train = job.dataset.batch(shown[:N_FIXED]), len(job.train_idx)
        model_fn, train_config = job.model_snapshot, job.train_config
        ended = (job.run_dir, job.dataset) if progress.state not in ACTIVE and job.run_dir is not None else None
        mapped, live = (job.dataset, job.map_rows), progress.state in ACTIVE
    elif run is not None:
        if not_trained_here_ui(run):
            return
        steps, epochs = run.history.get("steps", []), run.history.get("epochs", [])
        st.caption(f"Curves of the active model **{run.name}** — press Start to train a new one.")
        dataset = run_dataset(run)
        train_idx, val_idx = split_indices(dataset.n, run.config.train.val_fraction, run.config.train.seed)
        shown, kind = preview_indices(dataset.n, run.config.train.val_fraction, run.config.train.seed)
        name, model_key = run.name, (str(run.path), (run.path / "model.safetensors").stat().st_mtime)
        fixed, n_train = dataset.batch(shown[:N_FIXED]), len(train_idx)
        model_fn, train_config = (lambda: run.model), run.config.train
        if dataset.shape != run.config.model.input_shape:
            fixed = None
        ended = (run, dataset)
        mapped, live = (dataset, map_rows(val_idx, run.config.train.seed)), False
    else:
        st.info("No model yet: choose the settings and press **Start training**.")
        return
    if ended is not None:
        weak_model_ui(*ended, page="train")  # once the job has ended: is the model weak, and what would help
    if kind == "training":
        st.caption(NO_VALIDATION)
    _curves_ui(steps, epochs, name)
    left, right = st.columns(2)
    with left:
        _kl_ui(steps, epochs, n_train, train_config, running=job is not None and live)
    with right:
        _images_ui(model_key, model_fn, fixed, kind)
        epoch_reconstructions_download_ui(epochs, fixed, name)
    epoch_map_ui(epochs, *mapped, key="train_epoch_map", live=live, name=name)


def not_trained_here_ui(run: Run) -> bool:
    """An imported active model (vae_core/imports/): why it cannot be trained further here, instead of its curves."""
    try:
        refuse_untrainable(run.config.model)
    except ValueError as exc:
        st.info(f"**{run.name}**: {exc}. Press Start to train a new model on the active data.",
                icon=":material/block:")
        return True
    return False


def _job_history(job: ProcessJob) -> tuple[list[dict], list[dict], object, int]:
    """The job's history, fetched incrementally: only step rows newer than the last redraw cross the lock."""
    cache = st.session_state.get("live_history")
    if cache is None or cache["job"] != id(job):
        cache = st.session_state.live_history = {"job": id(job), "steps": []}
    since = cache["steps"][-1]["step"] if cache["steps"] else 0
    snap = job.snapshot(since_step=since)
    cache["steps"].extend(snap.steps)
    return cache["steps"], snap.epochs, snap.progress, snap.model_version


def eta_text(p) -> str:
    """' · ETA 05:12' while the job runs ('estimating…' until its rate has settled); nothing once it has ended."""
    if p.state != "running":
        return ""
    if p.eta_s is None:
        return " · ETA estimating…"
    return " · ETA " + (time.strftime("%M:%S", time.gmtime(p.eta_s)) if p.eta_s < 3600 else f"{p.eta_s / 3600:.1f} h")


def _progress_ui(p) -> None:
    st.progress(p.fraction, text=f"**{p.state}** · epoch {p.epoch}/{p.epochs} · step {p.step}/{p.total_steps} · "
                                 f"{p.samples_per_s:,.0f} samples/s{eta_text(p)}")
    if p.error:
        st.error(p.error)
    for warning in p.warnings:
        st.warning(warning)


def stopped_run_ui(job: ProcessJob) -> None:
    """A stopped job's run did not replace the active model (ui.state.adopt_finished_job): offer it."""
    stopped, current = st.session_state.get(STOPPED_RUN), active_run()
    if job.state != "stopped" or stopped != str(job.run_dir) or current is None or current.path == job.run_dir:
        return
    left, right = st.columns([3, 1.2], vertical_alignment="center")
    left.info(f"Stopped: **{job.run_dir.name}** was saved; **{current.name}** is still the active model.",
              icon=":material/info:")
    if right.button("Make it active", key="train_use_stopped", icon=":material/swap_horiz:", width="stretch",
                    help="Make the stopped run the active model"):
        set_active_run(job.run_dir)
        st.rerun()  # the whole page (this is a fragment): the sidebar names the active model


def _curves_ui(steps: list[dict], epochs: list[dict], name: str) -> None:
    keep = dict(persist_state="session")
    c1, c2, c3, c4 = st.columns([2.6, 1.6, 2, 1.8], vertical_alignment="bottom")  # c2: "min/max" and its help whole
    smoothing = c1.slider("Smoothing (EMA)", 0.0, 0.99, 0.6, 0.01, key="chart_smoothing",
                          help="Weight per training step (debiased, as TensorBoard's): the same curve however many "
                               "points the history keeps", **keep)
    log_y = c2.toggle("log y", key="chart_logy", **keep)
    log_x = c2.toggle("log x", key="chart_logx", **keep)
    band = c2.toggle("min/max", key="chart_band", help="Instead of the raw values, the band between the lowest and "
                     "highest over the smoothing's window (the steps over which it forgets)", **keep)
    x_axis = c3.segmented_control("x axis", ["step", "epoch"], default="step", key="chart_x", required=True, **keep)
    c4.download_button("History (CSV)", lambda: history_frame({"steps": steps, "epochs": epochs}).to_csv(index=False),
                       file_name=f"{name}-history.csv", mime="text/csv", key="history_csv", on_click="ignore",
                       icon=":material/download:", width="stretch", disabled=not steps)
    if not steps:
        st.info("Waiting for the first training steps…", icon=":material/hourglass_top:")
        return
    curves, heatmap = st.columns([3, 2])
    curves.plotly_chart(loss_figure(steps, epochs, smoothing, log_y, x_axis or "step", log_x=log_x, band=band),
                        key="loss_chart")
    with heatmap:
        _kl_heatmap_ui(steps, epochs, x_axis or "step")


def _kl_heatmap_ui(steps: list[dict], epochs: list[dict], x_axis: str) -> None:
    """KL per latent dimension over time (the x axis chosen for the curves): units switching on or collapsing."""
    kl = kl_over_time(steps, epochs, x_axis)
    if kl is None:  # by epoch, before the first epoch ends
        st.caption("KL per dimension by epoch appears when the first epoch ends.")
        return
    st.plotly_chart(kl_heatmap_figure(kl), key="kl_heatmap")
    st.caption(f"KL per latent dimension over time, nats ({kl.source}).")


def _kl_ui(steps: list[dict], epochs: list[dict], n_train: int, train_config: TrainConfig, running: bool) -> None:
    """Per-dimension KL (validation, last epoch; the last steps' average before that), active units, KL vanishing
    (its one-click remedies while a job runs; once it has ended the weak-model warning above offers them)."""
    if epochs and epochs[-1].get("val_kl_per_dim"):
        kl, source = epochs[-1]["val_kl_per_dim"], f"validation, epoch {epochs[-1]['epoch']}"
    elif steps:
        kl, source = np.mean([r["kl_per_dim"] for r in steps[-20:]], axis=0).tolist(), "training, last steps"
    else:
        st.caption("KL per dimension appears after the first steps.")
        return
    st.markdown(f"**KL per latent dimension** ({source})")
    units = epochs[-1].get("active_units") if epochs else None
    m1, m2 = st.columns(2)
    m1.metric("Active units", "—" if units is None else f"{units} / {len(kl)}", help="Burda et al.: Cov(E_q[z]) > 0.01")
    m2.metric(f"Collapsed (KL < {KL_COLLAPSE_NATS:g})", f"{collapsed_dims(kl)} / {len(kl)}",
              help="Dimensions that carry almost no information (validation KL below the threshold). A unit can be "
                   "'active' by its posterior means' spread and still have a tiny KL: the two criteria differ.")
    st.plotly_chart(kl_bars_figure(kl), key="kl_chart")
    if epochs and kl_vanishing(kl):
        st.warning(f"**KL vanishing**: {collapsed_dims(kl)} of {len(kl)} latent dimensions carry less than "
                   f"{KL_COLLAPSE_NATS:g} nats — q(z|x) ≈ p(z) there, so z says almost nothing about x. "
                   + ("Remedies:" if running else "The model's warning above offers remedies."),
                   icon=":material/warning:")
        if running:
            remedy_buttons_ui(kl_remedies(train_config, n_train), key_prefix="remedy_")
            st.caption("Warm-up and free bits apply at the next Start; halving β also applies to the running job now.")


def _images_ui(model_key: tuple, model_fn, fixed: np.ndarray | None, kind: str) -> None:
    """Fixed validation (or training) images over their reconstructions, and prior samples; recomputed only for new
    weights."""
    cache = st.session_state.get("live_images")
    if cache is None or cache["key"] != model_key:
        model = model_fn()
        cache = st.session_state.live_images = {"key": model_key, **_decode_images(model, fixed)}
    if "recon" in cache:
        st.markdown(f"**{kind.capitalize()} images (top) and reconstructions (bottom)**")
        st.image(cache["recon"])
    st.markdown("**Samples from the prior** z ~ N(0, I)")
    st.image(cache["samples"])


@torch.no_grad()
def _decode_images(model: VAE, fixed: np.ndarray | None) -> dict[str, np.ndarray]:
    model.eval()
    z = torch.randn((N_PRIOR, model.config.latent_dim), generator=torch.Generator().manual_seed(0))  # same z each epoch
    out = {"samples": grid(model.decode_mean(z).numpy(), ncols=N_PRIOR // 2)}
    if fixed is not None and len(fixed):
        mu, _ = model.encode(torch.from_numpy(fixed))
        out["recon"] = grid(np.concatenate([fixed, model.decode_mean(mu).numpy()]), ncols=len(fixed))
    return out
