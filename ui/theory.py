"""The theory expander: the ELBO, the closed-form KL, the reparameterization trick and KL vanishing, each formula
next to the number it gives for the active model on a few hundred validation images."""
from __future__ import annotations

import json
import math

import numpy as np
import streamlit as st
import torch

from ui.server import dataset_for, run_for
from ui.warmup import settle
from vae_core.data import Dataset, preview_indices
from vae_core.metrics import KL_COLLAPSE_NATS, evaluate
from vae_core.objective import LOG_2PI, kl_per_dim
from vae_core.runs import Run

N_IMAGES = 256  # validation images (training ones for a run without a split) the numbers are averaged over
IWAE_K = 32  # importance samples for the tighter bound L_k
MC_SAMPLES = 10_000  # samples for the Monte Carlo check of the closed-form KL
SHOW_DIMS = 4  # latent dimensions shown in the reparameterization table


def theory_ui(run: Run | None, dataset: Dataset | None) -> None:
    """An expander with the seed's maths, each formula beside its live value for `run` on `dataset`; computed and
    sent only while it is open (a closed one costs the page nothing)."""
    box = st.expander("Theory — what a VAE optimises, with this model's numbers", icon=":material/school:",
                      key="theory_open", on_change="rerun")
    if not box.open:
        return
    with box:
        numbers, why = _numbers_for(run, dataset)
        if numbers is None:
            st.caption(why)
        else:
            st.caption(f"Numbers for **{run.name}** on {numbers['n']} {numbers['images']} images of {dataset.name}, "
                       "in nats per image." + (" It was trained without a validation split, so these images were "
                                               "seen in training." if numbers["images"] == "training" else ""))
        _elbo_ui(numbers)
        st.divider()
        _kl_ui(numbers)
        st.divider()
        _reparam_ui(numbers)
        st.divider()
        _vanishing_ui(numbers)


def _numbers_for(run: Run | None, dataset: Dataset | None) -> tuple[dict | None, str]:
    """The live numbers (cached per run file and dataset), or None and the reason."""
    if run is None or dataset is None:
        return None, "Train a model (or make one active on Runs) to see the numbers it produces."
    if dataset.shape != run.config.model.input_shape:
        return None, f"{run.name} expects {run.config.model.input_shape} images; {dataset.name} has {dataset.shape}."
    try:
        mtime = (run.path / "model.safetensors").stat().st_mtime
        return theory_numbers(str(run.path), mtime, json.dumps(dataset.source, sort_keys=True)), ""
    except (OSError, ValueError) as exc:
        return None, f"Could not evaluate {run.name}: {exc}"


@st.cache_data(max_entries=32, show_spinner="Evaluating the active model…")
def theory_numbers(run_path: str, mtime: float, source_json: str) -> dict:
    """ELBO terms, IWAE bound, per-dim KL and one image's μ, σ, ε, z with a Monte Carlo check of the closed-form KL."""
    run, dataset = run_for(run_path), dataset_for(json.loads(source_json))
    shown, kind = preview_indices(dataset.n, run.config.train.val_fraction, run.config.train.seed)
    images = dataset.subset(shown[:N_IMAGES])
    ev = evaluate(run.model, images, iwae_k=IWAE_K, seed=0)
    return {"n": ev.n, "images": kind, "recon": ev.reconstruction, "kl": ev.kl, "elbo": ev.elbo, "iwae": ev.iwae,
            "kl_per_dim": ev.kl_per_dim, "active_units": ev.active_units,
            **_one_image(run, images.batch([0]))}


@torch.no_grad()
def _one_image(run: Run, x: np.ndarray) -> dict:
    """μ, σ, one ε and z for image x; its KL in closed form and as a Monte Carlo average of log q(z|x) − log p(z)."""
    run.model.eval()
    mu, logvar = run.model.encode(torch.from_numpy(x))  # (1, D)
    gen = torch.Generator().manual_seed(0)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((MC_SAMPLES, mu.shape[1]), generator=gen)  # (S, D)
    z = mu + std * eps
    log_q = (-0.5 * (LOG_2PI + logvar + eps.pow(2))).sum(1)  # (S,)
    log_p = (-0.5 * (LOG_2PI + z.pow(2))).sum(1)
    diff = (log_q - log_p).numpy()
    return {"mu": mu[0].tolist(), "sigma": std[0].tolist(), "eps": eps[0].tolist(), "z": z[0].tolist(),
            "kl_closed": float(kl_per_dim(mu, logvar).sum()), "kl_mc": float(diff.mean()),
            "kl_mc_se": float(diff.std(ddof=1) / math.sqrt(len(diff)))}


def _formula_and_numbers(numbers: dict | None):
    """Two columns: the maths on the left, the live values on the right (None when there are no numbers)."""
    left, right = st.columns([3, 2], gap="large")
    return left, (right if numbers is not None else None)


def _elbo_ui(numbers: dict | None) -> None:
    left, right = _formula_and_numbers(numbers)
    with left:
        st.markdown("**The ELBO.** The encoder q(z|x) approximates the intractable posterior p(z|x); the gap between "
                    "log p(x) and the bound is exactly how far it misses, a KL that is never negative:")
        st.latex(r"\log p(x) = \underbrace{\mathbb{E}_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z))}"
                 r"_{\text{ELBO}} + \underbrace{\mathrm{KL}(q(z|x)\,\|\,p(z|x))}_{\ge 0} \;\ge\; \text{ELBO}")
        st.markdown("Training maximises the ELBO: reconstruct well, but keep each q(z|x) close to the prior. "
                    "The importance-weighted bound L_k (Burda et al. 2015) sits between the two:")
        st.latex(r"\text{ELBO} = \mathcal{L}_1 \le \mathcal{L}_k = \mathbb{E}\Big[\log \tfrac{1}{k}\sum_{i=1}^k "
                 r"\tfrac{p(x, z_i)}{q(z_i|x)}\Big] \le \log p(x)")
    if right is not None:
        a, b = right.columns(2)
        a.metric("E_q[log p(x|z)]", f"{-numbers['recon']:.2f}")
        b.metric("KL(q(z|x) ‖ p(z))", f"{numbers['kl']:.2f}")
        a.metric("ELBO", f"{numbers['elbo']:.2f}")
        b.metric(f"L_{IWAE_K} (≤ log p(x))", f"{numbers['iwae']:.2f}",
                 delta=f"{numbers['iwae'] - numbers['elbo']:+.2f} over the ELBO", delta_color="off")


def _kl_ui(numbers: dict | None) -> None:
    left, right = _formula_and_numbers(numbers)
    with left:
        st.markdown("**The KL in closed form.** Both q(z|x) = N(μ, diag σ²) and p(z) = N(0, I) are Gaussian, so the "
                    "KL needs no sampling (Kingma & Welling 2014, appendix B):")
        st.latex(r"\mathrm{KL}\big(\mathcal{N}(\mu, \sigma^2)\,\|\,\mathcal{N}(0, I)\big) = \tfrac{1}{2}\sum_{j=1}^{D}"
                 r"\left(\mu_j^2 + \sigma_j^2 - \log \sigma_j^2 - 1\right)")
    if right is not None:
        right.metric(f"Closed form, first {numbers['images']} image", f"{numbers['kl_closed']:.3f}")
        right.metric(f"Monte Carlo, {MC_SAMPLES:,} samples of log q − log p", f"{numbers['kl_mc']:.3f}",
                     delta=f"± {numbers['kl_mc_se']:.3f} (standard error)", delta_color="off")


def _reparam_ui(numbers: dict | None) -> None:
    left, right = _formula_and_numbers(numbers)
    with left:
        st.markdown("**The reparameterization trick.** Sampling z ~ q(z|x) directly has no gradient with respect to "
                    "μ and σ; writing the sample as a deterministic function of them and of outside noise has one:")
        st.latex(r"z = \mu + \sigma \odot \varepsilon,\qquad \varepsilon \sim \mathcal{N}(0, I)")
        st.latex(r"\nabla_{\mu,\sigma}\,\mathbb{E}_{q(z|x)}[f(z)] = \mathbb{E}_{\varepsilon}\big[\nabla_{\mu,\sigma}"
                 r"\,f(\mu + \sigma \odot \varepsilon)\big]")
    if right is not None:
        d = min(SHOW_DIMS, len(numbers["mu"]))
        right.caption(f"The first {numbers['images']} image's first {d} latent dimensions, with one draw of ε:")
        columns = {"mu": "μ", "sigma": "σ", "eps": "ε", "z": "μ + σε"}
        settle()  # the warm-up thread may be importing pandas right now (see ui/warmup.py)
        import pandas as pd  # here, not at the top: the Explore page's cold start does without pandas

        table = pd.DataFrame({label: numbers[k][:d] for k, label in columns.items()}, index=[f"z{j}" for j in range(d)])
        right.dataframe(table.style.format("{:+.3f}"))


def _vanishing_ui(numbers: dict | None) -> None:
    left, right = _formula_and_numbers(numbers)
    with left:
        st.markdown("**KL vanishing (posterior collapse).** A dimension whose q(z_j|x) equals the prior for every x "
                    "costs no KL and carries no information: the decoder learns to ignore it. Remedies: "
                    "β < 1, a KL warm-up from β = 0 (Bowman et al. 2016), or free bits λ per dimension "
                    "(Kingma et al. 2016):")
        st.latex(r"\mathcal{L}_\beta = \mathbb{E}_q[\log p(x|z)] - \beta \sum_{j=1}^{D} \max\!\big(\lambda,\ "
                 r"\mathrm{KL}_j\big)")
    if right is not None:
        kl = np.asarray(numbers["kl_per_dim"])
        right.metric("Active units (Cov_x E_q[z_j] > 0.01)", f"{numbers['active_units']} / {len(kl)}")
        collapsed = int((kl < KL_COLLAPSE_NATS).sum())
        right.metric(f"Dimensions with KL < {KL_COLLAPSE_NATS:g} nats", f"{collapsed} / {len(kl)}")
        right.caption("KL per dimension: " + ", ".join(f"z{j} {v:.2f}" for j, v in enumerate(kl)))
