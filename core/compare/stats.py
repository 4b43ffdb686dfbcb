"""Statistics for comparing training runs: mean +- std over seeds and a paired bootstrap.

Pure numpy, deterministic for a given `seed`.

    ms = mean_std([0.91, 0.93, 0.92])             # {"mean": 0.92, "std": 0.01, "n": 3, "values": [...]}
    ci = paired_bootstrap(base_correct, variant_correct, strata=seed_of_sample, seed=0)
    ci["diff"], ci["ci_low"], ci["ci_high"], ci["distinguishable"]

`paired_bootstrap(a, b)` estimates `stat(b) - stat(a)` where both runs were evaluated on the same samples
(row i of `a` and row i of `b` are the same validation sample). Each bootstrap replicate draws the sample
indices once and applies them to both runs, so what the samples have in common cancels out. The statistic
is a ratio of sums, `sum(num) / sum(den)`: with `den` left out it is the plain mean of the per-sample
values (accuracy from 0/1 correctness), with `den` an indicator it is a conditional mean (the mean
severity over the mistakes only). `strata` (e.g. the seed each sample's pair came from) resamples within
each stratum, keeping the strata's sizes, so runs pooled over seeds are compared seed by seed.

`paired_bootstrap_many` does the same for several statistics of the same samples with one set of
replicates (what a report with several metrics uses). The work is bounded: with more than `max_work`
sample draws in all, fewer replicates are drawn (never under `min_boot`), and past that the interval is
the normal approximation (delta method for ratios), which is what the bootstrap converges to for such
sample sizes anyway; `method` says which was used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["mean_std", "paired_bootstrap", "paired_bootstrap_many", "ratio"]

_CHUNK_ELEMENTS = 1_000_000  # bootstrap draws per chunk (about 8 MB of int64 per matrix)
DEFAULT_MAX_WORK = 50_000_000  # n_boot * n sample draws before replicates are reduced
DEFAULT_MIN_BOOT = 200


def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of the finite values given.

    `n` counts the finite values used; with none, mean and std are None."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    arr = np.asarray(vals, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size), "values": vals}


def ratio(num: Any, den: Any = None) -> float:
    """sum(num) / sum(den) (the mean when den is None); NaN when the denominator is 0."""
    num = np.asarray(num, dtype=np.float64)
    d = float(num.size) if den is None else float(np.asarray(den, dtype=np.float64).sum())
    return float(num.sum() / d) if d > 0 else float("nan")


def _as_1d(x: Any, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ValueError(f"{name} has {arr.size} values, expected {n} (the runs must share their samples)")
    return arr


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def paired_bootstrap(
    a: Any,
    b: Any,
    *,
    den_a: Any = None,
    den_b: Any = None,
    strata: Any = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    max_work: int = DEFAULT_MAX_WORK,
    min_boot: int = DEFAULT_MIN_BOOT,
) -> dict[str, Any]:
    """Percentile bootstrap CI of `stat(b) - stat(a)` over paired samples.

    a, b: per-sample values of the two runs (same length, same sample order); den_a/den_b: optional
    per-sample denominators (stat = sum(num)/sum(den)); strata: optional group label per sample,
    resampled within. Returns diff (the point estimate on all samples), stat_a, stat_b, ci_low, ci_high,
    confidence, distinguishable (the CI excludes 0), n, n_boot (replicates used), method ("bootstrap" or
    "normal"), seed. Replicates whose statistic is undefined (a zero denominator) are dropped; with none
    left, or an undefined point estimate, the CI is None and nothing is distinguishable.
    """
    return paired_bootstrap_many(
        {"stat": (a, b, den_a, den_b)},
        strata=strata,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        max_work=max_work,
        min_boot=min_boot,
    )["stat"]


def paired_bootstrap_many(
    stats: Mapping[str, tuple[Any, Any, Any, Any]],
    *,
    strata: Any = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    max_work: int = DEFAULT_MAX_WORK,
    min_boot: int = DEFAULT_MIN_BOOT,
) -> dict[str, dict[str, Any]]:
    """`paired_bootstrap` for several statistics `{name: (a, b, den_a, den_b)}` of the same n samples,
    sharing the replicates (den_a / den_b may be None). Returns {name: result}."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not stats:
        return {}
    names = list(stats)
    vals = _stack_rows(stats)  # (4k, n): a, den_a, b, den_b of every statistic
    n = vals.shape[1]
    groups = _strata_groups(strata, n)
    rows = {name: vals[4 * k : 4 * k + 4] for k, name in enumerate(names)}
    results = {name: _point_estimate(rows[name], confidence, seed) for name in names}
    if n == 0:
        return results

    boots = n_boot if n_boot * n <= max_work else max_work // n
    if boots < min(min_boot, n_boot):
        for name in names:
            _normal_ci(results[name], rows[name], groups, confidence)
        return results
    sums = _bootstrap_sums(vals, groups, boots, seed)
    for k, name in enumerate(names):
        _percentile_ci(results[name], sums[4 * k : 4 * k + 4], confidence)
    return results


def _stack_rows(stats: Mapping[str, tuple[Any, Any, Any, Any]]) -> np.ndarray:
    """The per-sample values as one (4 * statistics, n) array: a, den_a, b, den_b (a None den: ones)."""
    n = None
    rows: list[np.ndarray] = []
    for name, (a, b, den_a, den_b) in stats.items():
        a = _as_1d(a, f"{name}.a", n)
        n = a.size
        rows += [
            a,
            np.ones(n) if den_a is None else _as_1d(den_a, f"{name}.den_a", n),
            _as_1d(b, f"{name}.b", n),
            np.ones(n) if den_b is None else _as_1d(den_b, f"{name}.den_b", n),
        ]
    return np.stack(rows)


def _strata_groups(strata: Any, n: int) -> list[np.ndarray]:
    """The sample indices of each stratum (all samples in one group without strata)."""
    if strata is None:
        return [np.arange(n)]
    labels = np.asarray(strata)
    if labels.shape != (n,):
        raise ValueError(f"strata must have one label per sample ({n})")
    return [np.flatnonzero(labels == u) for u in np.unique(labels)]


def _point_estimate(v: np.ndarray, confidence: float, seed: int) -> dict[str, Any]:
    """The result on all samples, before any interval: diff, stat_a, stat_b (CI fields empty)."""
    a, da, b, db = v
    n = a.size
    stat_a, stat_b = ratio(a, da), ratio(b, db)
    return {
        "diff": _finite_or_none(stat_b - stat_a) if n else None,
        "stat_a": _finite_or_none(stat_a),
        "stat_b": _finite_or_none(stat_b),
        "ci_low": None,
        "ci_high": None,
        "confidence": confidence,
        "distinguishable": False,
        "n": int(n),
        "n_boot": 0,
        "method": "bootstrap",
        "seed": int(seed),
    }


def _bootstrap_sums(vals: np.ndarray, groups: list[np.ndarray], boots: int, seed: int) -> np.ndarray:
    """(rows of vals, boots): each row's sum in each replicate, resampling within every group."""
    rng = np.random.default_rng(seed)
    n = vals.shape[1]
    sums = np.zeros((vals.shape[0], boots))
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for idx_group in groups:
        gvals = vals[:, idx_group]
        for start in range(0, boots, chunk):
            stop = min(boots, start + chunk)
            sums[:, start:stop] += gvals @ _draw_counts(rng, stop - start, idx_group.size).T
    return sums


def _draw_counts(rng: np.random.Generator, replicates: int, m: int) -> np.ndarray:
    """(replicates, m): how often each of m samples is drawn in each resample of size m."""
    draw = rng.integers(0, m, size=(replicates, m))
    flat = (draw + (np.arange(replicates) * m)[:, None]).ravel()
    return np.bincount(flat, minlength=replicates * m).reshape(replicates, m).astype(np.float64)


def _percentile_ci(res: dict[str, Any], s: np.ndarray, confidence: float) -> None:
    """Percentile interval of ratio_b - ratio_a from the replicates' sums `s` (a, den_a, b, den_b)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        diffs = s[2] / s[3] - s[0] / s[1]
    diffs = diffs[np.isfinite(diffs)]
    res["n_boot"] = int(diffs.size)
    if diffs.size == 0 or res["diff"] is None:
        return
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    res["ci_low"], res["ci_high"] = float(lo), float(hi)
    res["distinguishable"] = bool(lo > 0.0 or hi < 0.0)


def _normal_ci(res: dict[str, Any], v: np.ndarray, groups: list[np.ndarray], confidence: float) -> None:
    """Delta-method normal interval for ratio_b - ratio_a, variance summed over strata."""
    res["method"] = "normal"
    a, da, b, db = v
    if res["diff"] is None:
        return
    ra, rb = float(a.sum() / da.sum()), float(b.sum() / db.sum())
    # linearised per-sample contribution of the difference of the two ratios
    z = (b - rb * db) / db.sum() - (a - ra * da) / da.sum()
    var = 0.0
    for g in groups:
        zg = z[g]
        if zg.size > 1:
            var += zg.size * float(zg.var(ddof=1))
    half = NormalDist().inv_cdf(0.5 + confidence / 2.0) * math.sqrt(var)
    res["ci_low"], res["ci_high"] = res["diff"] - half, res["diff"] + half
    res["distinguishable"] = bool(res["ci_low"] > 0.0 or res["ci_high"] < 0.0)
