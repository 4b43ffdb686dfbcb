"""Calibration of the comparison verdicts: simulated comparisons with a true zero effect are called
`better` / `worse` at no more than the nominal rate plus sampling error, a planted effect is found, and the
tests' p-values and Holm's adjustment match hand-computed ones on tiny known cases.

The simulator is `benchmarks/stats_calibration.py` (the script whose table docs/statistics.md shows), so
the test and the documented numbers measure the same thing. About 15 s.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from core.compare.stats import (
    BETTER,
    NO_EVIDENCE,
    PAIRED_T,
    WILCOXON,
    WORSE,
    choose_seed_test,
    holm,
    paired_seed_test,
    seed_verdicts,
)

ALPHA = 0.05
_SPEC = importlib.util.spec_from_file_location(
    "stats_calibration", Path(__file__).resolve().parents[2] / "benchmarks" / "stats_calibration.py"
)
calib = sys.modules.setdefault("stats_calibration", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(calib)


def _bound(n: int) -> float:
    """The nominal rate plus 3 binomial standard errors for n simulated decisions."""
    return ALPHA + 3.0 * math.sqrt(ALPHA * (1.0 - ALPHA) / n)


@pytest.mark.parametrize(("seeds", "test"), [(3, PAIRED_T), (5, PAIRED_T), (10, WILCOXON)])
def test_a_true_zero_effect_is_called_at_most_at_the_nominal_rate(seeds, test):
    sims = 2000
    assert choose_seed_test(seeds, 1, ALPHA) == test
    correct = calib.simulate(calib.Model(seeds=seeds, variants=1), sims, np.random.default_rng(seeds))
    rates = calib.verdict_rates(correct, alpha=ALPHA)
    assert rates["called"] <= _bound(sims), rates
    # not merely silent: the t-test is exact for normal differences and sits at the nominal rate; the
    # signed-rank test, exact given the ties, is a little under it (discrete p-values)
    assert rates["called"] >= ALPHA - 3.0 * math.sqrt(ALPHA * (1 - ALPHA) / sims) - (
        0.015 if test == WILCOXON else 0
    )
    assert abs(rates["better"] - rates["worse"]) < 0.02  # symmetric: no direction is favoured


@pytest.mark.parametrize("seeds", [3, 8])
def test_holm_keeps_the_familywise_rate_over_three_null_variants(seeds):
    sims = 1000
    correct = calib.simulate(calib.Model(seeds=seeds, variants=3), sims, np.random.default_rng(100 + seeds))
    rates = calib.verdict_rates(correct, alpha=ALPHA)
    assert rates["familywise"] <= _bound(sims), rates
    # without the correction the same tests would call some variant far more often than alpha
    acc = correct.mean(axis=3)
    diffs = acc[:, :, 1:] - acc[:, :, :1]
    raw = [
        any((paired_seed_test(diffs[s, :, j], m=3)["p_value"] or 1.0) <= ALPHA for j in range(3))
        for s in range(300)
    ]
    assert np.mean(raw) > rates["familywise"]


def test_a_planted_effect_is_found_in_its_direction():
    sims = 200
    model = calib.Model(seeds=10, variants=1, effect=1.0)  # accuracy 0.80 -> about 0.91
    correct = calib.simulate(model, sims, np.random.default_rng(7))
    rates = calib.verdict_rates(correct, alpha=ALPHA)
    assert rates["better"] >= 0.9 and rates["worse"] == 0.0, rates
    # a metric where lower is better: the same improvement, read the other way round
    acc = correct.mean(axis=3)
    errors = (1 - acc[:, :, 1]) - (1 - acc[:, :, 0])  # error rate: variant - baseline, negative
    words = [seed_verdicts({"v": errors[s]}, higher_is_better=False)["v"]["verdict"] for s in range(sims)]
    assert words.count(BETTER) / sims >= 0.9 and WORSE not in words
    small = calib.Model(seeds=5, variants=1, effect=1.0)  # fewer seeds: the t-test still finds it mostly
    assert calib.verdict_rates(calib.simulate(small, sims, np.random.default_rng(8)))["better"] >= 0.6


def test_signed_rank_p_values_match_hand_computed_ones():
    # ranks 1..6, the negative one has rank 6: 14 of the 64 sign patterns give a negative rank sum <= 6
    r = paired_seed_test([0.1, 0.2, 0.3, 0.4, 0.5, -0.6])
    assert r["test"] == WILCOXON and r["statistic"] == 6.0 and r["p_value"] == pytest.approx(28 / 64)
    assert paired_seed_test([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])["p_value"] == pytest.approx(2 / 64)
    # ties: |d| midranks 2, 2, 2, 4, 5, 6; negative rank sum 2: 4 of 64 patterns reach <= 2
    tied = [0.1, 0.1, -0.1, 0.2, 0.3, 0.4]
    assert paired_seed_test(tied)["p_value"] == pytest.approx(8 / 64)
    assert paired_seed_test(tied)["p_value"] == pytest.approx(sps.wilcoxon(tied).pvalue)
    # a zero is dropped: the rest is the untied case above, one seed fewer
    assert paired_seed_test([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6])["p_value"] == pytest.approx(2 / 64)
    # floating-point noise of a subtraction does not break a tie (0.3 - 0.2 != 0.1 in floats)
    assert paired_seed_test([0.3 - 0.2, 0.1, -0.1, 0.2, 0.3, 0.4])["p_value"] == pytest.approx(8 / 64)
    rng = np.random.default_rng(0)
    for _ in range(10):  # the exact distribution given ties equals scipy's enumeration of all sign patterns
        d = rng.integers(-3, 4, size=int(rng.integers(6, 9))) / 100
        if np.count_nonzero(d):
            assert paired_seed_test(d)["p_value"] == pytest.approx(sps.wilcoxon(d).pvalue, abs=1e-12)


def test_paired_t_p_value_matches_the_closed_form():
    # d = 1, 2, 3: mean 2, sd 1, t = 2 sqrt(3), df 2; P(|T_2| > t) = 1 - t / sqrt(2 + t^2)
    r = paired_seed_test([1.0, 2.0, 3.0])
    assert r["test"] == PAIRED_T and r["statistic"] == pytest.approx(2 * math.sqrt(3))
    assert r["p_value"] == pytest.approx(1 - math.sqrt(12 / 14), rel=1e-12)
    constant = paired_seed_test([0.5, 0.5, 0.5])  # scipy would say p = 0: no variation, no test
    assert constant["p_value"] is None and "do not vary" in constant["reason"]


def test_holm_on_a_known_vector():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02 0.03 0.06 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([None, 0.2, 0.01]) == [None, pytest.approx(0.2), pytest.approx(0.02)]
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([]) == []


def test_the_rule_choosing_the_test_and_the_one_seed_case():
    assert [choose_seed_test(n) for n in (1, 2, 5, 6)] == [None, PAIRED_T, PAIRED_T, WILCOXON]
    assert choose_seed_test(6, m=2) == PAIRED_T and choose_seed_test(7, m=3) == WILCOXON
    assert choose_seed_test(7, m=4) == PAIRED_T and choose_seed_test(8, m=6) == WILCOXON
    one = seed_verdicts({"a": [0.3], "b": [0.02, 0.03, None]})
    assert one["a"]["verdict"] == NO_EVIDENCE and one["a"]["test"] is None and "1 seed" in one["a"]["reason"]
    assert one["b"]["n_seeds"] == 2 and one["b"]["p_adjusted"] == one["b"]["p_value"]  # a family of one
    assert one["b"]["effect_size"]["d_z"] == pytest.approx(0.025 / np.std([0.02, 0.03], ddof=1))
