"""What the Explore page computes once per model and dataset, cached on hashable keys (run path + file time, data
source, method, parameters) so coming back to the page is instant."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

import numpy as np
import streamlit as st

from ui.explore.live import Asset
from ui.server import dataset_for, run_for
from ui.state import active_dataset, run_dataset
from vae_core.config import ModelConfig, from_dict, to_dict
from vae_core.data import Dataset
from vae_core.export import export_model
from vae_core.latent import (DimOrder, aggregate_posterior_samples, dims_by_kl, encode, kl_per_image,
                             posterior_samples, reconstruction_error, slider_ranges)
from vae_core.projections import Projection, projection_key, projection_method
from vae_core.runs import Run
from vae_core.runs.budget import RunCost, check_budget, memory_budget, price

AGGREGATE_SAMPLES = 5000  # draws from q(z) behind the slider ranges
MAX_MODEL_BYTES = 96 * 2**20  # weights sent to the browser at most; a bigger model decodes on the server


@dataclass
class Latents:
    mu: np.ndarray  # (N, D) posterior means
    logvar: np.ndarray  # (N, D)
    kl: np.ndarray  # (N,) KL(q(z|x) || p(z)) per image, nats
    recon_error: np.ndarray  # (N,) -log p(x | z = mu) per image, nats
    dims: DimOrder  # latent dimensions by mean KL, collapsed last
    ranges: np.ndarray  # (D, 2) slider range: 1st-99th percentile of the aggregate posterior
    seconds: float  # how long encoding took


def run_mtime(run: Run) -> float:
    return (run.path / "model.safetensors").stat().st_mtime


def source_json(dataset: Dataset) -> str:
    return json.dumps(dataset.source, sort_keys=True)


def explore_dataset(run: Run) -> tuple[Dataset | None, str]:
    """The images to explore: the active dataset when the model fits its shape, else the run's own training data;
    None, and why, when neither can be used or exploring them would need more memory than the budget."""
    shape = tuple(run.config.model.input_shape)
    dataset, which = _shaped_dataset(run, shape)
    if dataset is not None:
        refusal = over_budget(run.config.model, dataset, run.name)
        if refusal:
            return None, refusal
    return dataset, which


def _shaped_dataset(run: Run, shape: tuple[int, ...]) -> tuple[Dataset | None, str]:
    try:
        active = active_dataset()
        if active.shape == shape:
            return active, f"the active dataset, {active.name}"
    except ValueError:
        pass
    try:
        own = run_dataset(run)
    except ValueError as exc:
        return None, f"{run.name}'s training data cannot be loaded: {exc}"
    if own.shape != shape:
        return None, (f"{run.name} expects {shape[0]}×{shape[1]}×{shape[2]} images and its training data is gone; "
                      "load a dataset of that shape on the Data page.")
    return own, f"{own.name}, the data {run.name} was trained on (the active dataset has another image shape)"


def explore_cost(model: ModelConfig, n_images: int) -> RunCost:
    """The memory of exploring n_images with a model (vae_core/runs/budget.py): encoding every image, the draws from
    q(z) behind the slider ranges, and the browser export when the weights are small enough to be sent."""
    cost = price(model, n_images, extra_rows=AGGREGATE_SAMPLES, export=True)
    return cost if cost.weights <= MAX_MODEL_BYTES else replace(cost, export=0)


def over_budget(model: ModelConfig, dataset: Dataset, name: str) -> str | None:
    """Why exploring dataset with run `name` is refused before any of it is done (its cost over the memory budget,
    or a config that describes no model), or None when it may go ahead. Cached: pricing builds the model on the meta
    device (5-10 ms), and Explore asks on every rerun (a slider released, a click)."""
    return _over_budget(json.dumps(to_dict(model), sort_keys=True), dataset.n, name, memory_budget())


@st.cache_data(max_entries=64, show_spinner=False)
def _over_budget(model_json: str, n_images: int, name: str, budget: int) -> str | None:
    model = from_dict(ModelConfig, json.loads(model_json))
    try:
        check_budget(explore_cost(model, n_images), f"Exploring {name} on {n_images:,} images", budget)
    except ValueError as exc:
        return str(exc)
    return None


def latents_for(run: Run, dataset: Dataset) -> Latents:
    return _latents(str(run.path), run_mtime(run), source_json(dataset))


@st.cache_data(max_entries=8, show_spinner="Encoding the dataset…")
def _latents(run_path: str, mtime: float, source: str) -> Latents:
    start = time.perf_counter()
    run, dataset = run_for(run_path), dataset_for(json.loads(source))
    _, mu, logvar = encode(run.model, dataset)
    return Latents(mu=mu, logvar=logvar, kl=kl_per_image(mu, logvar),
                   recon_error=reconstruction_error(run.model, dataset, mu), dims=dims_by_kl(mu, logvar),
                   ranges=slider_ranges(aggregate_posterior_samples(mu, logvar, AGGREGATE_SAMPLES, seed=0)),
                   seconds=time.perf_counter() - start)


def row_labels(dataset: Dataset) -> np.ndarray | None:
    """Each row's class name as a string array (N,), or None without labels."""
    if dataset.labels is None:
        return None
    names = dataset.class_names or [str(c) for c in range(int(dataset.labels.max()) + 1)]
    return np.asarray(names)[dataset.labels]


def codes_for(latents: Latents, sample: bool) -> np.ndarray:
    """What gets projected: posterior means, or one seeded sample of q(z|x) per image."""
    return posterior_samples(latents.mu, latents.logvar, seed=0) if sample else latents.mu


def projection_for(run: Run, dataset: Dataset, method: str, params: dict) -> Projection:
    """A projection fitted on the spot (latent axes, PCA), cached per (model file, data, method, parameters). Slow
    methods (t-SNE, UMAP) are fitted through the server's queue instead: ui/explore/fits.py."""
    if projection_method(method).slow:
        raise ValueError(f"{method} is fitted through the server's queue (ui.explore.fits.slow_projection_ui)")
    return _projection(projection_key(str(run.path), run_mtime(run), dataset.source, method, params))


@st.cache_data(max_entries=16, show_spinner=False)
def _projection(key: str) -> Projection:
    spec = json.loads(key)
    params = dict(spec["params"])
    latents = _latents(spec["run"], spec["mtime"], json.dumps(spec["data"], sort_keys=True))
    codes = codes_for(latents, bool(params.pop("sample", False)))
    return Projection(method=spec["method"], **params).fit(codes)


def model_asset(run: Run) -> tuple[Asset | None, str]:
    """The model for the browser (both networks, once per model file), or None and why it stays on the server."""
    return _model_asset(str(run.path), run_mtime(run))


@st.cache_resource(max_entries=8, show_spinner=False)
def _model_asset(run_path: str, mtime: float) -> tuple[Asset | None, str]:
    run = run_for(run_path)
    weights = price(run.config.model, 0).weights  # priced before exporting: a refused export is never built
    if weights > MAX_MODEL_BYTES:
        return None, (f"its weights ({weights / 2**20:.0f} MB) are more than the "
                      f"{MAX_MODEL_BYTES // 2**20} MB sent to a browser")
    try:
        model = export_model(run.model)
    except ValueError as exc:
        return None, f"this model cannot run in the browser ({exc})"
    return Asset("model", model.spec, {"floats": np.frombuffer(model.blob, "<f4")}), ""
