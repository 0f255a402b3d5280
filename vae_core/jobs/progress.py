"""What a page reads of a job's progress: the Progress and Snapshot it is given, and the rate meter behind its
images per second and its ETA (given only once the rate has settled: "estimating…" before)."""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

RATE_WINDOW_S = 2.0  # samples/s is measured over about the last this many seconds of training
WARMUP_STEPS = 5  # the first steps after a start or a pause carry one-off costs (allocation, kernel choice, page-ins)
SETTLE_S = 3.0  # the ETA's rate is measured over at least this many seconds after the warm-up steps


@dataclass
class Progress:
    state: str
    epoch: int  # epochs completed
    epochs: int
    step: int
    total_steps: int
    samples_per_s: float
    eta_s: float | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


@dataclass
class Snapshot:
    progress: Progress
    steps: list[dict]  # per logged step: step, epoch, total, recon, kl, beta_kl, beta, lr, samples_per_s, kl_per_dim
    epochs: list[dict]  # per epoch: epoch, step, val_neg_elbo, val_recon, val_kl, active_units, val_kl_per_dim, ...
    model_version: int  # increases each time new weights are published (each epoch)


class Rate:
    """Images per second, two ways. add() returns the rate over the last RATE_WINDOW_S seconds of training (the figure
    the page shows), across epoch ends. Per epoch, as it was, a digits epoch lasts ~20 ms and any hiccup in it moved
    the figure from 1,000 to 96,000 images/s between two refreshes of the Train page.

    steady is what the ETA divides by: images per second since the end of the first WARMUP_STEPS steps, once SETTLE_S
    seconds have passed since then (None before: the page says "estimating…"). A short window's rate is a poor
    forecast: the first steps are slow, an epoch's validation and another process on the cores pause it for seconds,
    and the ETA of a conv job swung 3-6x off in its first minute; the mean since the warm-up counts every such pause
    at its share. restart() after a pause: the rate and the ETA start afresh."""

    def __init__(self):
        self._images = 0
        self._marks: collections.deque[tuple[float, int]] = collections.deque()
        self.restart()

    def restart(self) -> None:
        self._marks.clear()
        self._marks.append((time.perf_counter(), self._images))
        self._steps = 0
        self._settle_mark: tuple[float, int] | None = None
        self.steady: float | None = None

    def add(self, images: int) -> float:
        """Count a step's images; the rate since the oldest mark of the window."""
        now = time.perf_counter()
        self._images += images
        self._steps += 1
        self._marks.append((now, self._images))
        while len(self._marks) > 2 and now - self._marks[1][0] >= RATE_WINDOW_S:
            self._marks.popleft()
        if self._steps == WARMUP_STEPS:
            self._settle_mark = (now, self._images)
        elif self._settle_mark is not None and now - self._settle_mark[0] >= SETTLE_S:
            self.steady = (self._images - self._settle_mark[1]) / (now - self._settle_mark[0])
        then, before = self._marks[0]
        return (self._images - before) / max(1e-9, now - then)
