"""What the Explore page computes once per model and dataset, cached on hashable keys (run path + file time, data
source, method, parameters) so coming back to the page is instant."""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import streamlit as st

from ui.explore.live import Asset
from ui.server import dataset_for, encodings, run_for, runs_root
from ui.state import active_dataset, run_own_dataset
from vae_core.config import ModelConfig, from_dict, to_dict
from vae_core.data import Dataset
from vae_core.encoding import Encoding
from vae_core.export import export_model
from vae_core.latent import (DimOrder, aggregate_posterior_samples, dims_by_kl, kl_per_image, posterior_samples,
                             slider_ranges)
from vae_core.projections import Projection, projection_key, projection_method
from vae_core.runs import Run
from vae_core.runs.budget import RunCost, check_budget, memory_budget, price
from vae_core.runs.codes_cache import CODES_FOLDER, DEFAULT_CAP_BYTES, CodesCache, data_hash, weights_hash
from vae_core.runs.kept_data import NOTE_KEY, kept_digest

AGGREGATE_SAMPLES = 5000  # draws from q(z) behind the slider ranges
MAX_MODEL_BYTES = 96 * 2**20  # weights sent to the browser at most; a bigger model decodes on the server
REFRESHES = 4  # while the rest of the codes is encoded, the page shows more of them this many times
CODES_SHOWN = "explore_codes_shown"  # session state: the codes version each encoding's page shows meanwhile
WATCHED = "explore_encoding_watched"  # session state: the encodings this session showed in progress
BY_ENCODING = "explore_rerun_by_encoding"  # session state: the next script run is the encoding's, not the user's
STATUS_PX = 120  # the encoding's place above the map: its note (up to 3 lines: a window 1,100 px wide) and the bar


@dataclass
class Latents:
    """The codes Explore shows: every image's once complete; before that a seeded sample of them (rows), the other
    rows NaN, while the rest is encoded in the background (vae_core/encoding.py)."""
    mu: np.ndarray  # (N, D) posterior means (NaN in rows not encoded yet)
    logvar: np.ndarray  # (N, D)
    kl: np.ndarray  # (N,) KL(q(z|x) || p(z)) per image, nats
    recon_error: np.ndarray  # (N,) -log p(x | z = mu) per image, nats (NaN where not computed yet)
    dims: DimOrder  # latent dimensions by mean KL over rows, collapsed last
    ranges: np.ndarray  # (D, 2) slider range: 1st-99th percentile of the aggregate posterior of rows
    rows: np.ndarray  # (M,) dataset rows with codes, sorted: all N once complete
    version: str  # which codes these are (vae_core.encoding.Snapshot.version)
    complete: bool
    from_cache: bool  # read back from the codes kept with the run
    seconds: float  # to the first block (or to read the kept codes)
    total_seconds: float | None  # to the last code, once complete


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
    own, why = _own_dataset(run)
    if own is None:
        return None, why
    if own.shape != shape:
        return None, (f"{run.name} expects {shape[0]}×{shape[1]}×{shape[2]} images and its training data is gone"
                      f"{why}; load a dataset of that shape on the Data page.")
    kept = " (kept with the run)" if kept_digest(own.source) else ""
    return own, f"{own.name}, the data {run.name} was trained on{kept} (the active dataset has another image shape)"


def _own_dataset(run: Run) -> tuple[Dataset | None, str]:
    """The data a run was trained on (its kept copy, or its files while they are there) or the active dataset, with
    what is known of why its own is gone; None and why when its kept copy is refused (vae_core/runs/kept_data.py)."""
    try:
        return run_own_dataset(run), ""
    except ValueError as exc:
        if kept_digest(run.config.dataset) is not None:
            return None, f"{run.name}'s training data cannot be loaded: {exc}"
    note = run.config.dataset.get(NOTE_KEY)
    why = f" — train data {note}: upload it again" if note else ""
    try:
        return active_dataset(), why
    except ValueError:
        return None, f"{run.name}'s training data cannot be loaded{why}"


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
    """The codes as far as they are encoded now: all of them (kept ones read back at once), or the first block
    while the rest is encoded in the background (encoding_status_ui shows it and reruns the page as it grows)."""
    encoding = encoding_for(run, dataset)
    return _latents(str(run.path), run_mtime(run), source_json(dataset), _shown_version(run, dataset, encoding))


def _shown_version(run: Run, dataset: Dataset, encoding: Encoding) -> str:
    """The codes this session shows: every code once they are in; before that the ones it showed first, until
    encoding_status_ui moves it on (a quarter more done), so a slider released meanwhile does not redraw the map."""
    now = encoding.snapshot().version
    if encoding.complete:
        return now
    shown, key = st.session_state.setdefault(CODES_SHOWN, {}), model_data_key(run, dataset)
    if not encoding.holds(shown.get(key)):  # none yet, or from an encoding the server has since made again
        shown[key] = now
    return shown[key]


def model_data_key(run: Run, dataset: Dataset) -> str:
    """What this server's per-model state on Explore is keyed by: the model file (path, modification time) and the
    data (its encoding, the codes a session shows, the model check a session has seen)."""
    return _key_of(str(run.path), run_mtime(run), source_json(dataset))


def _key_of(run_path: str, mtime: float, source: str) -> str:
    """One encoding's key on this server: the model file (path, modification time) and the data."""
    return json.dumps([run_path, mtime, source])


def encoding_for(run: Run, dataset: Dataset) -> Encoding:
    return _encoding(str(run.path), run_mtime(run), source_json(dataset))


def codes_folder(run: Run) -> Path:
    """Where a run's codes are kept: in its folder when it lives in the runs folder, else (the bundled run, read
    only) under the runs folder's hidden .codes/<name>."""
    root = runs_root().resolve()
    path = run.path.resolve()
    return path / CODES_FOLDER if path.parent == root else root / ".codes" / run.name


def codes_cap() -> int:
    """Bytes of codes kept per run (env VAE_CODES_CACHE_BYTES, default 256 MiB); the oldest go first."""
    return int(float(os.environ.get("VAE_CODES_CACHE_BYTES") or DEFAULT_CAP_BYTES))


def _encoding(run_path: str, mtime: float, source: str) -> Encoding:
    """The server's encoding of one model file on one dataset, made (kept codes read, or the first block encoded)
    on first use."""
    key = _key_of(run_path, mtime, source)

    def make() -> Encoding:
        run, dataset = run_for(run_path), dataset_for(json.loads(source))
        cache = CodesCache(codes_folder(run), codes_cap())
        # only where needed (vae_core.encoding); a run's kept copy is named by the SHA-256 of its bytes, checked when
        # it was read: that names its images as well, without hashing 123 MB of a 10k 64x64 RGB set a second time
        digest = kept_digest(dataset.source)
        images_hash = (lambda: digest) if digest else functools.partial(data_hash, dataset.images)
        return Encoding(run.model, dataset, cache, weights_hash(run.model), images_hash)

    if encodings().has(key):
        return encodings().get(key, make)
    with st.spinner("Encoding the dataset…"):
        return encodings().get(key, make)


@st.cache_data(max_entries=8, show_spinner=False)
def _latents(run_path: str, mtime: float, source: str, version: str) -> Latents:
    snap = _encoding(run_path, mtime, source).snapshot(version)
    mu, logvar = snap.mu[snap.rows], snap.logvar[snap.rows]
    return Latents(mu=snap.mu, logvar=snap.logvar, kl=kl_per_image(snap.mu, snap.logvar),
                   recon_error=snap.recon_error, dims=dims_by_kl(mu, logvar),
                   ranges=slider_ranges(aggregate_posterior_samples(mu, logvar, AGGREGATE_SAMPLES, seed=0)),
                   rows=snap.rows, version=snap.version, complete=snap.complete, from_cache=snap.from_cache,
                   seconds=snap.seconds, total_seconds=snap.total_seconds)


def encoding_note(dataset: Dataset, latents: Latents) -> str:
    """What the page says about its codes: where they came from, and while some are missing, what is estimated."""
    if latents.from_cache:
        return f"{dataset.n:,} codes read from the cache kept with the run in {latents.seconds:.2f} s."
    if latents.complete:
        return f"{dataset.n:,} images encoded in {latents.total_seconds:.2f} s."
    return (f"{len(latents.rows):,} of {dataset.n:,} images encoded (a seeded random sample, in "
            f"{latents.seconds:.2f} s), the rest encoding in the background: the map, the slider ranges and the "
            f"dimensions' KL are from these {len(latents.rows):,} until all are encoded; the nearest images and "
            "the views below wait for all of them.")


def encoding_watched(run: Run, dataset: Dataset, latents: Latents) -> bool:
    """Whether this session has seen this model's codes being encoded (now, or earlier on this model and data): the
    page then keeps the encoding's place above the map (encoding_status_ui) when the last code comes in."""
    watched, key = st.session_state.setdefault(WATCHED, set()), model_data_key(run, dataset)
    if not latents.complete:
        watched.add(key)
    return key in watched


def rerun_by_encoding() -> bool:
    """Whether this script run is one the encoding asked for (more codes in), not the user: what the page showed for
    the user's last action (a link's notes) stays. Asked once per run."""
    return bool(st.session_state.pop(BY_ENCODING, False))


def encoding_status_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    """The encoding's place above the map, of one height whatever is in it, so the map and the panel do not move when
    the encoding ends: while the rest of the codes is encoded, the note and a progress bar (the page rerun each
    quarter, the map filling in, and once more when the last code is in); then the note alone."""
    with st.container(height=STATUS_PX, border=False):
        if latents.complete:
            st.caption(f"{encoding_note(dataset, latents)} The map, the slider ranges and the dimensions' KL are from "
                       "all of them now, and the nearest images and the views below are available.")
            return
        st.caption(encoding_note(dataset, latents))
        _progress_ui(run, dataset, latents)


@st.fragment(run_every=1.0)
def _progress_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    encoding = encoding_for(run, dataset)
    if encoding.error:
        st.warning(f"Encoding the rest of the images failed: {encoding.error}", icon=":material/error:")
        return
    done, n = encoding.progress()
    step = max(1, n // REFRESHES)
    if encoding.complete or done >= len(latents.rows) + step:
        st.session_state.get(CODES_SHOWN, {}).pop(model_data_key(run, dataset), None)  # show what is in now
        st.session_state[BY_ENCODING] = True
        st.rerun(scope="app")
    st.progress(done / n, text=f"Encoding the rest of the images: {done:,} of {n:,}…")


def row_labels(dataset: Dataset) -> np.ndarray | None:
    """Each row's class name as a string array (N,), or None without labels."""
    if dataset.labels is None:
        return None
    names = dataset.class_names or [str(c) for c in range(int(dataset.labels.max()) + 1)]
    return np.asarray(names)[dataset.labels]


def codes_for(latents: Latents, sample: bool) -> np.ndarray:
    """What gets projected, for the rows with codes: posterior means, or one seeded sample of q(z|x) per image (the
    same draw for a row whether all codes are there or not)."""
    return (posterior_samples(latents.mu, latents.logvar, seed=0) if sample else latents.mu)[latents.rows]


def map_key(run: Run, dataset: Dataset, latents: Latents, method: str, params: dict) -> str:
    """One projection's cache key: model file, data, which of its codes, method and parameters."""
    return projection_key(str(run.path), run_mtime(run), {"source": dataset.source, "codes": latents.version},
                          method, params)


def projection_for(run: Run, dataset: Dataset, latents: Latents, method: str, params: dict) -> Projection:
    """A projection fitted on the spot (latent axes, PCA), cached per (model file, data, codes, method, parameters).
    Slow methods (t-SNE, UMAP) are fitted through the server's queue instead: ui/explore/fits.py."""
    if projection_method(method).slow:
        raise ValueError(f"{method} is fitted through the server's queue (ui.explore.fits.slow_projection_ui)")
    return _projection(map_key(run, dataset, latents, method, params))


@st.cache_data(max_entries=16, show_spinner=False)
def _projection(key: str) -> Projection:
    spec = json.loads(key)
    params = dict(spec["params"])
    latents = _latents(spec["run"], spec["mtime"], json.dumps(spec["data"]["source"], sort_keys=True),
                       spec["data"]["codes"])
    codes = codes_for(latents, bool(params.pop("sample", False)))
    projection = Projection(method=spec["method"], **params).fit(codes)
    projection.rows_ = latents.rows[projection.rows_]  # dataset rows (the same positions once every code is there)
    return projection


def model_asset(run: Run) -> tuple[Asset | None, str]:
    """The model for the browser (its programs and the decoder's weights: what the sliders, the map and the views
    need), or None and why it stays on the server."""
    model, _, why = _browser_assets(str(run.path), run_mtime(run))
    return model, why


def encoder_asset(run: Run) -> Asset | None:
    """The encoder's weights for the browser, sent only with the part that encodes there (the drawing pad): a conv
    model's encoder is half its weights (17 MB of a 64x64 RGB one's 34), which every open would otherwise wait for."""
    return _browser_assets(str(run.path), run_mtime(run))[1]


@st.cache_resource(max_entries=8, show_spinner=False)
def _browser_assets(run_path: str, mtime: float) -> tuple[Asset | None, Asset | None, str]:
    run = run_for(run_path)
    weights = price(run.config.model, 0).weights  # priced before exporting: a refused export is never built
    if weights > MAX_MODEL_BYTES:
        return None, None, (f"its weights ({weights / 2**20:.0f} MB) are more than the "
                            f"{MAX_MODEL_BYTES // 2**20} MB sent to a browser")
    try:
        model = export_model(run.model)
    except ValueError as exc:
        return None, None, f"this model cannot run in the browser ({exc})"
    floats, split = np.frombuffer(model.blob, "<f4"), model.spec["decoder_floats"]
    return (Asset("model", model.spec, {"floats": floats[:split]}),
            Asset("encoder", {"model": model.hash, "offset": split}, {"floats": floats[split:]}), "")
