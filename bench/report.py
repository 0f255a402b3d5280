"""One measured figure beside its anchor (a baseline measured in the same run) and its target, and the table that
prints them all."""
from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Sequence


@dataclass
class Figure:
    """A number from this run. ratio = value / anchor (or given_ratio); met compares ratio (or value, without an
    anchor) to target."""
    group: str
    name: str
    value: float | None
    unit: str
    anchor: float | None = None  # the baseline, measured in the same run
    anchor_name: str = ""
    target: float | None = None  # on the ratio when there is an anchor, else on the value
    better: str = "lower"  # "lower": met when <= target; "higher": met when >= target
    note: str = ""
    target_on_value: bool = False  # the target is on the value even though an anchor is shown (for scale)
    extra: dict = field(default_factory=dict)  # raw samples and details, for the JSON
    # the ratio when it is measured rather than value / anchor: e.g. the median of per-round ratios of runs made back
    # to back, where value and anchor are each a median over the whole run
    given_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.given_ratio is not None:
            return self.given_ratio
        if self.value is None or not self.anchor:
            return None
        return self.value / self.anchor

    @property
    def met(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        x = self.ratio if self.anchor_name and not self.target_on_value else self.value
        if x is None:
            return None
        return x <= self.target if self.better == "lower" else x >= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "—"
        op = "≤" if self.better == "lower" else "≥"
        if self.anchor_name and not self.target_on_value:
            return f"{op} {self.target:g}× {self.anchor_name}"
        return f"{op} {self.target:g} {self.unit}"

    @property
    def ratio_text(self) -> str:
        """The ratio to two decimals, or three where two would round onto the target and hide the verdict."""
        if self.ratio is None:
            return "—"
        digits = 3 if self.target is not None and not self.target_on_value and round(self.ratio, 2) == self.target else 2
        return f"{self.ratio:.{digits}f}×"

    def as_dict(self) -> dict:
        return asdict(self) | {"ratio": self.ratio, "met": self.met, "target_text": self.target_text}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "—"
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}" if abs(x) < 1 else f"{x:.1f}"
    return f"{text} {unit}".strip()


def table(figures: Sequence[Figure]) -> str:
    """Every figure as a row: value, anchor, ratio, target, met."""
    rows = [("figure", "value", "anchor (same run)", "ratio", "target", "met")]
    for f in figures:
        anchor = f"{f.anchor_name}: {_num(f.anchor, f.unit)}" if f.anchor_name else "—"
        met = {True: "yes", False: "NO", None: "—"}[f.met]
        rows.append((f"{f.group} · {f.name}", _num(f.value, f.unit), anchor,
                     f.ratio_text, f.target_text, met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  * {f.group} · {f.name}: {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", "notes:"] + notes if notes else []))


def markdown_table(figures: Sequence[Figure]) -> str:
    """The same table in Markdown, for the README."""
    lines = ["| figure | value | anchor (same run) | ratio | target | met |", "|---|---|---|---|---|---|"]
    for f in figures:
        anchor = f"{f.anchor_name}: {_num(f.anchor, f.unit)}" if f.anchor_name else "—"
        met = {True: "yes", False: "**no**", None: "—"}[f.met]
        lines.append(f"| {f.group} · {f.name} | {_num(f.value, f.unit)} | {anchor} | "
                     f"{f.ratio_text} | {f.target_text} | {met} |")
    return "\n".join(lines)
