"""The paired bootstraps (over samples, and over seeds then samples) and mean +- std on synthetic inputs
with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.compare.stats import mean_std, paired_bootstrap, paired_bootstrap_many, ratio, two_level_bootstrap


def _correct(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < p).astype(np.float64)


def test_identical_runs_give_zero_difference_and_a_ci_containing_zero():
    a = _correct(500, 0.8, 1)
    r = paired_bootstrap(a, a.copy(), n_boot=500, seed=3)
    assert r["diff"] == 0.0
    assert r["ci_low"] <= 0.0 <= r["ci_high"]
    assert r["ci_high"] - r["ci_low"] < 1e-12  # pairing cancels everything: the CI is a point
    assert r["distinguishable"] is False


def test_a_run_better_on_every_sample_excludes_zero_with_the_right_mean():
    a = np.linspace(0.0, 1.0, 400)
    b = a + 0.05  # better by exactly 0.05 on every sample
    r = paired_bootstrap(a, b, n_boot=500, seed=0)
    assert r["diff"] == pytest.approx(0.05)
    assert r["ci_low"] == pytest.approx(0.05) and r["ci_high"] == pytest.approx(0.05)
    assert r["distinguishable"] is True
    r2 = paired_bootstrap(b, a, n_boot=500, seed=0)  # the other direction
    assert r2["diff"] == pytest.approx(-0.05) and r2["distinguishable"] is True


def test_fixing_some_mistakes_gives_a_positive_ci_around_the_true_gain():
    a = _correct(1000, 0.7, 2)
    b = a.copy()
    wrong = np.flatnonzero(a == 0)
    b[wrong[: len(wrong) // 2]] = 1.0  # fixes half of the mistakes, breaks nothing
    r = paired_bootstrap(a, b, n_boot=1000, seed=0)
    assert r["diff"] == pytest.approx(b.mean() - a.mean())
    assert 0.0 < r["ci_low"] < r["diff"] < r["ci_high"]
    # the paired CI is much narrower than the unpaired spread of either accuracy
    assert r["ci_high"] - r["ci_low"] < 2 * 1.96 * math.sqrt(0.7 * 0.3 / 1000)


def test_independent_noise_with_equal_means_is_not_distinguishable_and_seeded():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    b += a.mean() - b.mean()  # equal means exactly
    r1 = paired_bootstrap(a, b, n_boot=400, seed=11)
    r2 = paired_bootstrap(a, b, n_boot=400, seed=11)
    assert r1 == r2
    assert r1["ci_low"] < 0.0 < r1["ci_high"] and not r1["distinguishable"]


def test_ratio_statistic_and_strata():
    # severity over mistakes: num = severity, den = mistake indicator
    sev_a = np.array([0.0, 1.0, 0.0, 0.5, 0.0, 1.0])
    mis_a = np.array([0, 1, 0, 1, 0, 1])
    sev_b = np.array([0.0, 0.5, 0.0, 0.5, 0.0, 0.5])
    mis_b = mis_a
    assert ratio(sev_a, mis_a) == pytest.approx(2.5 / 3)
    r = paired_bootstrap(sev_a, sev_b, den_a=mis_a, den_b=mis_b, strata=[0, 0, 0, 1, 1, 1], n_boot=300)
    assert r["diff"] == pytest.approx(1.5 / 3 - 2.5 / 3)
    assert r["ci_high"] <= 0.0 + 1e-12
    with pytest.raises(ValueError):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_mean_std_over_seeds():
    ms = mean_std([0.9, 0.92, 0.94])
    assert ms["mean"] == pytest.approx(0.92) and ms["std"] == pytest.approx(0.02) and ms["n"] == 3
    assert mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1, "values": [0.5]}
    assert mean_std([None, float("nan")])["mean"] is None


def test_many_statistics_share_replicates_and_huge_inputs_fall_back_to_the_normal_interval():
    a = _correct(2000, 0.8, 7)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:100]] = 1.0
    many = paired_bootstrap_many({"x": (a, b, None, None), "y": (b, a, None, None)}, n_boot=300, seed=1)
    single = paired_bootstrap(a, b, n_boot=300, seed=1)
    assert many["x"]["ci_low"] == single["ci_low"] and many["x"]["ci_high"] == single["ci_high"]
    assert many["y"]["ci_high"] == pytest.approx(-many["x"]["ci_low"])
    normal = paired_bootstrap(a, b, n_boot=300, max_work=1000, min_boot=100)
    assert normal["method"] == "normal" and normal["diff"] == pytest.approx(0.05)
    assert normal["ci_low"] == pytest.approx(single["ci_low"], abs=0.01)
    assert normal["ci_high"] == pytest.approx(single["ci_high"], abs=0.01)
    reduced = paired_bootstrap(a, b, n_boot=300, max_work=2000 * 150, min_boot=100)
    assert reduced["method"] == "bootstrap" and reduced["n_boot"] == 150


def test_two_level_bootstrap_resamples_the_seeds_as_well_as_the_samples():
    # every sample of seed k differs by exactly c_k: no sample-level noise, only seed-to-seed variation
    c = np.array([0.0, 0.1, 0.2])
    a = np.tile(np.linspace(0.0, 1.0, 100), 3)
    seeds = np.repeat([10, 11, 12], 100)
    b = a + c[np.searchsorted([10, 11, 12], seeds)]
    within = paired_bootstrap(a, b, strata=seeds, n_boot=1000, seed=1)
    assert within["levels"] == "samples" and within["ci_high"] - within["ci_low"] < 1e-12
    two = two_level_bootstrap(a, b, seeds=seeds, n_boot=1000, seed=1)
    assert two["levels"] == "strata_and_samples" and two["strata"] == 3 and two["diff"] == pytest.approx(0.1)
    # the mean of three seeds drawn from {0, 0.1, 0.2}: P(all three 0) = 1/27 > 2.5%, so the interval
    # reaches down to about 0 and up to about 0.2 (the sums 0..6 have weights 1 3 6 7 6 3 1 / 27)
    assert two["ci_low"] <= 1 / 30 + 1e-9 and two["ci_high"] >= 0.2 - 1 / 30 - 1e-9
    assert two == two_level_bootstrap(a, b, seeds=seeds, n_boot=1000, seed=1)  # seeded: reproducible


def test_two_level_bootstrap_with_one_seed_is_the_sample_bootstrap_and_unequal_seeds_work():
    a, b = _correct(300, 0.7, 3), _correct(300, 0.75, 4)
    one = two_level_bootstrap(a, b, seeds=np.zeros(300), n_boot=400, seed=2)
    plain = paired_bootstrap(a, b, n_boot=400, seed=2)
    assert one["levels"] == "samples" and (one["ci_low"], one["ci_high"]) == (
        plain["ci_low"],
        plain["ci_high"],
    )
    seeds = np.repeat([1, 2, 3, 4], [50, 100, 70, 80])  # splits of different sizes
    r = two_level_bootstrap(a, b, seeds=seeds, n_boot=400, seed=2)
    assert r["n"] == 300 and r["n_boot"] == 400 and r["ci_low"] < r["diff"] < r["ci_high"]


def test_two_level_normal_fallback_agrees_with_the_bootstrap():
    rng = np.random.default_rng(9)
    seeds = np.repeat(np.arange(8), 400)
    skill = 0.75 + rng.normal(0.0, 0.03, size=(8, 2))  # seed-level noise of both runs
    a = (rng.random(3200) < skill[seeds, 0]).astype(np.float64)
    b = (rng.random(3200) < skill[seeds, 1]).astype(np.float64)
    boot = two_level_bootstrap(a, b, seeds=seeds, n_boot=4000, seed=0)
    normal = two_level_bootstrap(a, b, seeds=seeds, n_boot=4000, max_work=1000, min_boot=100)
    assert normal["method"] == "normal" and normal["levels"] == "strata_and_samples"
    assert normal["ci_low"] == pytest.approx(boot["ci_low"], abs=0.006)
    assert normal["ci_high"] == pytest.approx(boot["ci_high"], abs=0.006)
    within = paired_bootstrap(a, b, strata=seeds, n_boot=4000, seed=0)
    assert within["ci_high"] - within["ci_low"] < boot["ci_high"] - boot["ci_low"]  # seeds add variance
