"""Slow projection fits on Explore (t-SNE, UMAP) as a person waits for them: the settings are chosen before the fit
starts (the Fit button), the time it will take is said before it starts (a rate measured on this server: the last
fits', or a small timed trial), a progress bar follows the fit where the method reports its progress, and a fit
nobody waits for any more is stopped (ui/fit_queue.py). Each setting is part of the fit's key: a map fitted with
other settings is never shown for these. Latent axes and PCA are fitted on the spot (ui/explore/data.py)."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from ui.explore.data import Latents, codes_for, map_key
from ui.fit_queue import QueueFull, Ticket
from ui.server import fit_queue, session_id
from ui.warmup import settle
from vae_core.data import Dataset
from vae_core.projections import METHODS, Method, Projection, projection_method
from vae_core.runs import Run

ASKED = "explore_fits_asked"  # keys of the slow fits this session asked for (pressed Fit): waited for again
FIT_BUTTON = "explore_fit"


def fit_params(params: dict) -> dict:
    """Projection's keywords among the page's parameters (not whether codes are sampled)."""
    return {k: v for k, v in params.items() if k != "sample"}


def fit_work(spec: Method, params: dict, n: int) -> float:
    """The method's work units for fitting these settings on n codes (what a measured rate scales by)."""
    return spec.work(Projection(spec.name, **fit_params(params)), n) if spec.work else 0.0


def estimate_s(spec: Method, params: dict, n: int, codes: np.ndarray | None = None) -> float | None:
    """Seconds the fit should take on this server: the median rate of its last fits here times this fit's work;
    before the first, a timed trial on spec.trial_points of the codes (once per server), where the method has one."""
    queue, work = fit_queue(), fit_work(spec, params, n)
    if work <= 0:
        return None
    seconds = queue.estimate(spec.name, work)
    if seconds is None and spec.trial_points and codes is not None and len(codes) > spec.trial_points:
        with st.spinner(f"Timing {spec.label} on this machine ({spec.trial_points} codes)…"):
            trial = {**fit_params(params), "max_points": spec.trial_points, "iterations": 250}
            Projection(spec.name, **trial).fit(codes)  # the process's first fit pays one-time costs (openTSNE's
            start = time.monotonic()                   # compiled kernels: 1.8 s of a 1.9 s trial): not timed, as
            Projection(spec.name, **trial).fit(codes)  # no later fit here pays them (timed, it made 3.4 s say 41 s)
            queue.record(spec.name, fit_work(spec, trial, spec.trial_points), time.monotonic() - start)
        seconds = queue.estimate(spec.name, work)
    return seconds


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "not measured yet on this server"
    return f"about {seconds:.0f} s" if seconds >= 1.5 else "about a second"


def slow_projection_ui(run: Run, dataset: Dataset, latents: Latents, method: str, params: dict) -> Projection | None:
    """The fitted projection when the server has it; otherwise the estimate and the Fit button, then (once pressed)
    the wait with its progress. None until a map can be drawn (the page says why)."""
    spec = projection_method(method)
    key = map_key(run, dataset, latents, method, params)
    queue = fit_queue()
    fitted = queue.cached(key)
    if fitted is not None:
        return fitted
    settle()  # the warm-up thread may be importing the method's package right now (see ui/warmup.py)
    n = min(len(latents.rows), int(params["max_points"]))
    codes = codes_for(latents, bool(params.get("sample")))
    seconds = estimate_s(spec, params, n, codes)
    asked = st.session_state.setdefault(ASKED, set())
    before_fit = st.empty()  # the estimate and Fit: gone in the run that draws the map (no jump on the next rerun)
    left, right = before_fit.container().columns([3, 1], vertical_alignment="center")
    note = f" {spec.fit_cost(n)}." if spec.fit_cost else ""
    left.caption(f"{spec.label} on {n:,} codes: {duration(seconds)} here (measured on this server).{note} "
                 "Choose its settings, then press Fit; the map is kept for these settings.")
    if right.button(f"Fit {spec.label}", key=FIT_BUTTON, type="primary", icon=":material/play_arrow:",
                    width="stretch"):
        asked.add(key)
    if key not in asked:
        return None
    kwargs = fit_params(params)

    def fit(report):
        projection = Projection(method, **kwargs).fit(codes, report if spec.reports_progress else None)
        projection.rows_ = latents.rows[projection.rows_]  # dataset rows (codes may be a first block's)
        return projection

    try:
        ticket = queue.submit(key, session_id(), fit, method=method, work=fit_work(spec, params, n))
    except QueueFull as exc:
        asked.discard(key)
        st.warning(str(exc), icon=":material/hourglass_disabled:")
        return None
    _wait_ui(ticket, spec, n, seconds)
    asked.discard(key)
    try:
        projection = ticket.value()
    except ValueError as exc:  # cancelled, or the fit refused its input
        st.warning(str(exc), icon=":material/hourglass_disabled:")
        return None
    before_fit.empty()
    return projection


def _wait_ui(ticket: Ticket, spec: Method, n: int, seconds: float | None) -> None:
    """Wait for the ticket, redrawing four times a second: the fits before it, then its progress (a bar where the
    method reports it; the time spent against the estimate otherwise). Each redraw lets Streamlit end this run when
    the user does something else; the fit goes on while anyone waits for it."""
    queue = fit_queue()
    bar = st.progress(0.0, text=f"{spec.label} on {n:,} codes: waiting…")
    while not ticket.done.wait(0.25):
        ahead = queue.ahead_of(ticket)
        if ahead:
            slow = ", ".join(m.label for m in METHODS.values() if m.slow)
            bar.progress(0.0, text=f":material/hourglass_top: {ahead} slow fit{'s' if ahead > 1 else ''} ({slow}) "
                                   "before this one (one at a time on this server)")
            continue
        spent = time.monotonic() - ticket.started if ticket.started else 0.0
        done = ticket.progress
        if done is not None and done > 0.05:
            left = spent / done * (1 - done)
            bar.progress(min(done, 1.0), text=f"{spec.label} on {n:,} codes: {done:.0%} · {spent:.0f} s · "
                                              f"about {left:.0f} s left")
        else:
            of = f" of about {seconds:.0f} s (estimated)" if seconds else ""
            bar.progress(0.0, text=f"{spec.label} on {n:,} codes: {spent:.0f} s{of}")
    bar.empty()
