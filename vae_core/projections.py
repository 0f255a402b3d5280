"""The projection family, declared once: every way the app draws latent codes in 2-D (latent axes, PCA, t-SNE, UMAP).

METHODS holds one entry per method with the facts its callers need instead of its name: its label; whether new codes
have an exact map (transform) or are placed among the fitted codes; whether that map is linear, y = A (z - m) (posterior
ellipses, the browser's star placement and drag); whether it is slow (fitted through the server's queue); whether it is
installed; the fewest latent dimensions it needs; its parameters with defaults; the work of a fit (what a measured
rate scales by, for the time a page says a fit will take) and whether the fit reports its progress; whether its plane
is fixed only up to rotation and sign, so that a refit is aligned to the last (align_to: the latent map per epoch).
`Projection` is the estimator (scikit-learn's conventions: __init__ stores parameters, fit returns self, learned state
ends in `_`).
A new method is one entry here, its fit, and its test."""
from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass
import math
from typing import Any, Callable

import numpy as np

from .latent import nearest_neighbours


@dataclass(frozen=True)
class Param:
    """One setting of a method: a keyword of Projection, its default and what a user may choose."""

    name: str  # Projection's keyword (and the key in projection_key's params)
    label: str
    default: Any
    kind: str = "range"  # "range" (low..high by step), "count" (a whole number typed in), "choice", "axes" (two dims)
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    help: str = ""


@dataclass(frozen=True)
class Method:
    """What one projection method is, for everything that draws, fits or explains it."""

    name: str
    label: str
    fit: Callable[[Projection, np.ndarray, Callable | None], None]  # sets the learned state (and embedding_ unless
    # exact); its third argument is a progress callback or None (see Projection.fit)
    transform: Callable[[Projection, np.ndarray], np.ndarray] | None = None  # exact map; None: placed by neighbours
    linear: bool = False  # fit sets mean_ (D,) and components_ (2, D): y = A (z - m) for any z
    inverse: bool = False  # inverse_transform: the code in the fitted plane at a 2-D position
    slow: bool = False  # fitted one at a time on a server, through its queue (ui/fit_queue.py)
    min_latent_dim: int = 1
    params: tuple[Param, ...] = ()
    requires: str | None = None  # an optional package the fit imports
    install: str = ""  # what to install, and how
    plane: str = ""  # what a dragged star moves z in (linear maps)
    fit_cost: Callable[[int], str] | None = None  # what fitting n codes costs, for a progress message
    work: Callable[[Projection, int], float] | None = None  # a fit's work on n codes: seconds = work x measured rate
    reports_progress: bool = False  # the fit calls its progress callback (a progress bar; it can be stopped)
    trial_points: int = 0  # a timed fit on this many codes gives the first estimate of a server (0: its first fit)
    axis_names: Callable[[Projection], tuple[str, str]] | None = None  # default: "<label> 1", "<label> 2"
    aligned: bool = False  # its plane is fixed only up to rotation and sign: a refit is aligned to the last (align_to)

    @property
    def exact(self) -> bool:
        """Whether new codes are mapped by the projection itself rather than placed among its fitted codes."""
        return self.transform is not None

    def available(self) -> bool:
        return self.requires is None or installed(self.requires)


def installed(module: str) -> bool:
    """Whether an optional package is installed (not imported: umap's import compiles)."""
    return importlib.util.find_spec(module) is not None


# --------------------------------------------------------------------------- the maths of each method


def _linear_map(p: Projection, z: np.ndarray) -> np.ndarray:
    """y = A (z - m): (K, D) -> (K, 2)."""
    return ((z - p.mean_) @ p.components_.T).astype(np.float32)


def _fit_axes(p: Projection, codes: np.ndarray, progress=None) -> None:
    """Two chosen latent axes: A has one 1 per row, m = 0, so transform(z) = z[:, dims] exactly."""
    d, (i, j) = codes.shape[1], p.dims
    if not (0 <= i < d and 0 <= j < d) or (i == j and d > 1):
        raise ValueError(f"identity projection needs two different dimensions in 0..{d - 1}, got {p.dims}")
    p.mean_ = np.zeros(d, np.float32)
    p.components_ = np.zeros((2, d), np.float32)
    p.components_[0, i] = p.components_[1, j] = 1.0


def _fit_pca(p: Projection, codes: np.ndarray, progress=None) -> None:
    """The two principal axes of the centred codes (SVD), signs fixed so the largest entry of each is positive."""
    p.mean_ = codes.mean(0)
    centred = (codes - p.mean_).astype(np.float64)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)  # principal axes = rows of vt
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])[:, None]  # deterministic signs
    components = np.zeros((2, codes.shape[1]))
    components[:min(2, len(vt))] = vt[:2]
    variance = s ** 2
    ratio = np.zeros(2)
    ratio[:min(2, len(s))] = variance[:2] / max(variance.sum(), 1e-12)
    p.components_, p.explained_variance_ratio_ = components.astype(np.float32), ratio


def _subsample(p: Projection, codes: np.ndarray) -> None:
    """rows_ and codes_: every code, or a seeded subsample of max_points."""
    if len(codes) > p.max_points:
        rng = np.random.default_rng(p.seed)
        p.rows_ = np.sort(rng.choice(len(codes), p.max_points, replace=False))
    p.codes_ = codes[p.rows_]


class FitStopped(Exception):
    """A fit stopped because its progress callback asked it to (nobody waits for it any more)."""


TSNE_EVERY = 10  # iterations between two progress reports of t-SNE


def _fit_tsne(p: Projection, codes: np.ndarray, progress=None) -> None:
    """openTSNE's t-SNE (Poličar et al. 2024; van der Maaten 2014): PCA initialisation, automatic learning rate,
    250 early-exaggeration iterations then the rest, seeded, one thread. Measured against scikit-learn's
    Barnes-Hut TSNE on the same codes (bench/bench_projection.py: tsne_libraries): as trustworthy, and faster.
    progress(fraction) every TSNE_EVERY iterations; True from it stops the fit (FitStopped)."""
    from openTSNE import TSNE
    from openTSNE.callbacks import Callback

    _subsample(p, codes)
    perplexity = float(min(p.perplexity, max(1.0, (len(p.rows_) - 1) / 3)))
    iterations = max(250, p.iterations)
    exaggerated = iterations // 2  # as scikit-learn: 250 of its 500
    done = [0, 0]  # iterations done before this phase, and in it (openTSNE counts each phase from 1)
    stop = [False]  # the callback asked to stop: openTSNE then returns the embedding so far (not an error)

    class Report(Callback):
        def __call__(self, iteration, error, embedding):
            if iteration < done[1]:  # the second phase began
                done[0] += exaggerated
            done[1] = iteration
            stop[0] = bool(progress(min(1.0, (done[0] + iteration) / iterations)))
            return stop[0]

    callbacks = [Report()] if progress is not None else None
    tsne = TSNE(n_components=2, perplexity=perplexity, initialization="pca", learning_rate="auto",
                early_exaggeration_iter=exaggerated, n_iter=iterations - exaggerated, random_state=p.seed, n_jobs=1,
                callbacks=callbacks, callbacks_every_iters=TSNE_EVERY)
    with warnings.catch_warnings():  # openTSNE warns when the PCA initialisation is rescaled: expected
        warnings.simplefilter("ignore")
        embedding = tsne.fit(p.codes_)
    if stop[0]:
        raise FitStopped(f"t-SNE stopped after {sum(done)} of {iterations} iterations")
    p.embedding_ = np.asarray(embedding, np.float32)
    if progress is not None:
        progress(1.0)


def _tsne_work(p: Projection, n: int) -> float:
    """kNN affinities and the gradient's interpolation: about n log n, times the iterations."""
    m = min(n, p.max_points)
    return m * math.log2(max(2, m)) * max(250, p.iterations) / 500


def _umap_work(p: Projection, n: int) -> float:
    m = min(n, p.max_points)
    return m * math.log2(max(2, m))


def _fit_umap(p: Projection, codes: np.ndarray, progress=None) -> None:
    """UMAP (McInnes et al. 2018, umap-learn), seeded."""
    import umap

    _subsample(p, codes)
    neighbours = int(min(p.umap_neighbours, len(p.rows_) - 1))
    reducer = umap.UMAP(n_components=2, n_neighbors=max(2, neighbours), min_dist=p.min_dist,
                        random_state=p.seed)  # seeded: one thread, the same map every time
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": the seed is the point
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        p.embedding_ = reducer.fit_transform(p.codes_).astype(np.float32)


# --------------------------------------------------------------------------- the table

MAX_POINTS = Param("max_points", "Points (subsample above)", 2000, kind="count", low=100, high=10_000, step=500)
METHODS: dict[str, Method] = {m.name: m for m in (
    Method("identity", "Latent axes", _fit_axes, _linear_map, linear=True, min_latent_dim=2,
           params=(Param("dims", "Axes", (0, 1), kind="axes"),), plane="the two latent axes",
           axis_names=lambda p: (f"z{p.dims[0]}", f"z{p.dims[1]}")),
    Method("pca", "PCA", _fit_pca, _linear_map, linear=True, inverse=True, aligned=True,
           plane="the principal plane (the rest of z kept)", axis_names=lambda p: ("PC1", "PC2")),
    Method("tsne", "t-SNE", _fit_tsne, slow=True, requires="openTSNE", work=_tsne_work, reports_progress=True,
           trial_points=200,
           install="the openTSNE package: pip install -r requirements.txt",
           params=(MAX_POINTS, Param("perplexity", "Perplexity", 30, low=5, high=100,
                                     help="about how many neighbours each point keeps close: more, more global"),
                   Param("iterations", "Iterations", 500, kind="choice", choices=(250, 500, 1000),
                         help="more: a more settled map, slower"))),
    Method("umap", "UMAP", _fit_umap, slow=True, requires="umap", work=_umap_work,
           install="the optional umap-learn package: pip install -r requirements-umap.txt",
           params=(MAX_POINTS, Param("umap_neighbours", "Neighbours", 15, low=2, high=100,
                                     help="more: more global structure"),
                   Param("min_dist", "Minimum distance", 0.1, low=0.0, high=0.99, step=0.01,
                         help="less: tighter clusters")),
           fit_cost=lambda n: "the first time in a server process also compiles UMAP's numba kernels: tens of "
                              "seconds"),
)}


def projection_method(name: str) -> Method:
    """The table's entry for a method name; an unknown name is refused with the known ones."""
    if name not in METHODS:
        raise ValueError(f"projection method must be one of {tuple(METHODS)}, got {name!r}")
    return METHODS[name]


def methods_for(latent_dim: int) -> list[Method]:
    """The methods a model with latent_dim dimensions can be drawn with here (installed ones), in the table's order."""
    return [m for m in METHODS.values() if m.available() and latent_dim >= m.min_latent_dim]


def default_method(latent_dim: int) -> str:
    """The first map to show: a 2-D latent space as it is, anything else by PCA."""
    return "identity" if latent_dim == 2 else "pca"


def align_to(xy: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """xy turned (a rotation, a reflection: an orthogonal R) to lie closest to previous, the same points' positions
    in an earlier fit: R = argmin ||xy R - previous||_F over R^T R = I, the orthogonal Procrustes problem (Schönemann
    1966): U V^T of the SVD of xy^T previous, as scipy.linalg.orthogonal_procrustes. (N, 2) -> (N, 2)."""
    xy, previous = np.asarray(xy, np.float64), np.asarray(previous, np.float64)
    if xy.shape != previous.shape:
        raise ValueError(f"alignment needs the same points in both fits, got {xy.shape} and {previous.shape}")
    u, _, vt = np.linalg.svd(xy.T @ previous)
    return xy @ (u @ vt)


def projection_key(run_path: str, run_mtime: float, source, method: str, params: dict) -> str:
    """A canonical string naming one projection: same model file, data, method and parameters -> same key."""
    return json.dumps({"run": str(run_path), "mtime": float(run_mtime), "data": source, "method": method,
                       "params": params}, sort_keys=True, default=str)


# --------------------------------------------------------------------------- the estimator


class Projection:
    """2-D view of latent codes, estimator-style; the method's facts are `spec` (its METHODS entry).

    fit(codes) sets embedding_ (M, 2) for rows_ (M indices into codes: all rows unless a slow method subsampled to
    max_points); a linear method also sets mean_ and components_ (2, D), PCA explained_variance_ratio_ (2,). t-SNE and
    UMAP have no exact map for new codes: transform places them by their n_neighbours nearest fitted codes (codes_),
    as the browser does."""

    def __init__(self, method: str = "pca", dims: tuple[int, int] = (0, 1), perplexity: float = 30.0,
                 max_points: int = 2000, iterations: int = 500, n_neighbours: int = 10, seed: int = 0,
                 umap_neighbours: int = 15, min_dist: float = 0.1):
        self.method, self.dims, self.perplexity, self.iterations = method, tuple(dims), perplexity, iterations
        self.max_points, self.n_neighbours, self.seed = max_points, n_neighbours, seed
        self.umap_neighbours, self.min_dist = umap_neighbours, min_dist

    @property
    def spec(self) -> Method:
        return projection_method(self.method)

    @property
    def exact(self) -> bool:
        """Whether transform(z) is the projection itself (identity, PCA) rather than a neighbour-based placement."""
        return self.spec.exact

    def axis_names(self) -> tuple[str, str]:
        spec = self.spec
        return spec.axis_names(self) if spec.axis_names else (f"{spec.label} 1", f"{spec.label} 2")

    def fit(self, codes: np.ndarray, progress: Callable[[float], bool] | None = None) -> Projection:
        """Fit on codes (N, D). progress(fraction done) is called by methods that report it (spec.reports_progress);
        a True answer stops the fit with FitStopped."""
        spec = self.spec
        codes = np.asarray(codes, np.float32)
        if codes.ndim != 2 or len(codes) < 2:
            raise ValueError(f"need at least 2 codes of shape (N, D) to project, got {codes.shape}")
        if not spec.available():
            raise ValueError(f"{spec.label} needs {spec.install}")
        self.rows_ = np.arange(len(codes))
        spec.fit(self, codes, progress)
        if spec.exact:
            self.embedding_ = self.transform(codes)
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        """2-D positions of new codes: the exact map (latent axes, PCA); otherwise the distance-weighted mean of the
        embedded positions of the k nearest fitted codes (t-SNE, UMAP, and the browser). (K, 2)."""
        z = np.atleast_2d(np.asarray(z, np.float32))
        if self.spec.transform is not None:
            return self.spec.transform(self, z)
        return np.stack([self._place(row) for row in z])

    def _place(self, z: np.ndarray) -> np.ndarray:
        idx, dist = nearest_neighbours(z, self.codes_, self.n_neighbours)
        weights = 1.0 / (dist + 1e-6)
        return (weights[:, None] * self.embedding_[idx]).sum(0) / weights.sum()

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """The code at 2-D position y: the mean plus y along the two axes (PCA). (K, D)."""
        if not self.spec.inverse:
            which = ", ".join(m.label for m in METHODS.values() if m.inverse)
            raise ValueError(f"inverse_transform exists for {which} only, not {self.method!r}")
        return (np.atleast_2d(y) @ self.components_ + self.mean_).astype(np.float32)
