"""Projections of a trained model's latent codes: PCA and t-SNE on 2k and 10k images, the first time (encoding
included) and cached (what coming back to the Explore page costs), through the Explore page's own cached functions;
and t-SNE by scikit-learn against openTSNE (what the engine uses) on the same 2k and 10k codes: time, and quality as
trustworthiness and the share of each code's 10 nearest neighbours kept in the map.

    python -m bench.bench_projection runs/shapes-10k      # a run trained on generated shapes (size 32, seed 0)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from vae_core.latent import encode
from vae_core.projections import Projection
from vae_core.runs import load_run

CASES = [  # (method, params, dataset size)
    ("pca", {}, 2000), ("pca", {}, 10_000),
    ("tsne", {"max_points": 2000, "perplexity": 30}, 2000),
    ("tsne", {"max_points": 2000, "perplexity": 30}, 10_000),  # the page's default: t-SNE on a 2k subsample
    ("tsne", {"max_points": 5000, "perplexity": 30}, 10_000),
]


def _quiet_streamlit() -> None:
    """Outside `streamlit run` the caches warn about the missing runtime on every call; they work regardless."""
    for name in ("streamlit", "streamlit.runtime.caching.cache_data_api", "streamlit.runtime.scriptrunner_utils"):
        logging.getLogger(name).setLevel(logging.ERROR)


def seconds(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def engine_pca(run_path: Path, n: int) -> dict:
    """The bare engine: encode n shapes and fit PCA on the means (no Streamlit, no caching)."""
    from vae_core.data import make_shapes

    run = load_run(run_path)
    dataset = make_shapes(n=n, size=run.config.model.input_shape[-1])
    enc_s, (_, mu, _) = seconds(lambda: encode(run.model, dataset))
    fit_s, _ = seconds(lambda: Projection("pca").fit(mu))
    return {"encode_s": enc_s, "pca_s": fit_s, "total_s": enc_s + fit_s}


def app_projection(run_path: Path, method: str, params: dict, n: int) -> dict:
    """The Explore page's path: latents (encode, KL, reconstruction error, slider ranges) then the projection,
    first and again (cache hits)."""
    _quiet_streamlit()
    os.environ["VAE_CODES_CACHE_BYTES"] = "0"  # every code encoded, none read back from the codes kept on disk
    from ui.explore.data import _encoding, _latents, _projection, map_key, source_json
    from ui.server import dataset_for

    run = load_run(run_path)
    source = {"kind": "shapes", "n": n, "size": run.config.model.input_shape[-1], "seed": 0}
    dataset = dataset_for(source)  # loading data is not part of the projection
    mtime = (run_path / "model.safetensors").stat().st_mtime

    def all_latents():
        encoding = _encoding(str(run_path), mtime, source_json(dataset))
        encoding.encode_rest()  # the background worker's part, here: every code
        return _latents(str(run_path), mtime, source_json(dataset), encoding.snapshot().version)

    first_latents, latents = seconds(all_latents)
    key = map_key(run, dataset, latents, method, {"sample": False, **params})
    first_projection, _ = seconds(lambda: _projection(key))
    cached, _ = seconds(lambda: (all_latents(), _projection(key)))
    return {"method": method, "params": params, "n": n, "first_latents_s": first_latents,
            "first_projection_s": first_projection, "first_s": first_latents + first_projection, "cached_s": cached}


def neighbours_kept(codes: np.ndarray, embedding: np.ndarray, k: int = 10) -> float:
    """The mean share of each code's k nearest codes that are among its k nearest points in the map."""
    from sklearn.neighbors import NearestNeighbors

    def knn(x):
        return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]

    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(knn(codes), knn(embedding))]))


def tsne_libraries(run_path: Path, sizes: tuple[int, ...] = (2000, 10_000)) -> list[dict]:
    """scikit-learn's Barnes-Hut TSNE and openTSNE (the engine's, through Projection) on the same codes, the same
    settings (perplexity 30, PCA initialisation, automatic learning rate, 500 iterations of which 250 exaggerated)."""
    from sklearn.manifold import TSNE, trustworthiness

    from vae_core.data import make_shapes

    run = load_run(run_path)
    _, mu, _ = encode(run.model, make_shapes(n=max(sizes), size=run.config.model.input_shape[-1]))
    out = []
    for n in sizes:
        codes = mu[np.random.default_rng(0).choice(len(mu), n, replace=False)] if n < len(mu) else mu
        fits = {"scikit-learn": lambda: TSNE(2, perplexity=30, init="pca", learning_rate="auto", max_iter=500,
                                             random_state=0).fit_transform(codes),
                "openTSNE": lambda: Projection("tsne", max_points=n, perplexity=30, iterations=500).fit(codes)
                .embedding_}
        for library, fit in fits.items():
            s, embedding = seconds(fit)
            out.append({"library": library, "n": n, "seconds": s,
                        "trustworthiness": float(trustworthiness(codes, embedding, n_neighbors=10)),
                        "neighbours_kept": neighbours_kept(codes, embedding)})
    return out


def measure(run_path: str | Path) -> dict:
    run_path = Path(run_path).resolve()
    return {"run": str(run_path), "engine_pca_10k": engine_pca(run_path, 10_000),
            "cases": [app_projection(run_path, m, p, n) for m, p, n in CASES],
            "tsne_libraries": tsne_libraries(run_path)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_projection", description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder trained on generated shapes")
    result = measure(p.parse_args(argv).run)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
