"""The bench's verdicts: a ratio measured round by round, and the table's met/not-met read from it."""
from __future__ import annotations

from statistics import median

import pytest

from bench.bench_train import RATIOS, round_ratios
from bench.report import Figure, markdown_table


def test_a_ratio_is_the_median_of_per_round_ratios_not_a_ratio_of_medians():
    # the engine is 2% slower than the loop in a round, but its median run fell in a slow minute the loop's did not
    seconds = {name: {"cpu": [1.0, 1.1, 1.0]} for pair in RATIOS for name in pair}
    seconds["equal_maths"] = {"cpu": [1.0, 1.3, 1.0]}  # seconds per round
    seconds["engine"] = {"cpu": [1.02, 1.02 * 1.3, 1.02 * 1.05]}  # 2% slower, and in round 3 a slow minute too
    rounds = round_ratios(seconds, "cpu")["engine_vs_equal_maths"]  # the engine's speed / the loop's, per round
    assert rounds == pytest.approx([1 / 1.02, 1 / 1.02, 1 / (1.02 * 1.05)])
    engine_rate, loop_rate = 1 / median(seconds["engine"]["cpu"]), 1 / median(seconds["equal_maths"]["cpu"])
    assert engine_rate / loop_rate < 0.95 < median(rounds)  # the medians would call a 2% overhead a 7% one
    figure = Figure("training", "engine vs loop", engine_rate, "img/s", loop_rate, "loop", 0.95, "higher",
                    given_ratio=median(rounds))
    assert figure.ratio == pytest.approx(1 / 1.02) and figure.met is True


def test_the_table_reads_the_given_ratio_and_judges_it_against_the_target():
    missed = Figure("training", "app vs CLI", 100.0, "img/s", 100.0, "CLI path", 0.95, "higher", given_ratio=0.9461)
    assert missed.met is False and missed.ratio_text == "0.946×"  # 0.95× would look met
    row = markdown_table([missed]).splitlines()[-1]
    assert "| 0.946× | ≥ 0.95× CLI path | **no** |" in row
    plain = Figure("training", "peak", 60.0, "GFLOP/s", 100.0, "peak", 0.5, "higher")
    assert plain.ratio == pytest.approx(0.6) and plain.met is True
