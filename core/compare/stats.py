"""Statistics for comparing training runs: mean +- std over seeds, paired bootstraps (over samples, or over
seeds and then samples), the paired test across seeds, Holm's correction and the verdict words.

Pure numpy / scipy, deterministic for a given `seed`.

    ms = mean_std([0.91, 0.93, 0.92])             # {"mean": 0.92, "std": 0.01, "n": 3, "values": [...]}
    ci = paired_bootstrap(base_correct, variant_correct, strata=seed_of_sample, seed=0)
    ci["diff"], ci["ci_low"], ci["ci_high"], ci["distinguishable"]
    ci = two_level_bootstrap(base_correct, variant_correct, seeds=seed_of_sample, seed=0)
    v = seed_verdicts({"simloss": [0.02, 0.01, 0.03], "soft": [0.0, -0.01, 0.01]}, higher_is_better=True)
    v["simloss"]["verdict"], v["simloss"]["test"], v["simloss"]["p_adjusted"]   # "no evidence", ...

**Bootstraps.** `paired_bootstrap(a, b)` estimates `stat(b) - stat(a)` where both runs were evaluated on
the same samples (row i of `a` and row i of `b` are the same sample). Each replicate draws the sample
indices once and applies them to both runs, so what the samples have in common cancels out. The statistic
is a ratio of sums, `sum(num) / sum(den)`: with `den` left out it is the plain mean of the per-sample
values (accuracy from 0/1 correctness), with `den` an indicator it is a conditional mean (the mean
severity over the mistakes only). `strata` (e.g. the seed each sample's pair came from) resamples within
each stratum, keeping the strata's sizes. `two_level_bootstrap` (`resample_strata=True`) first draws as
many strata (seeds) as there are, with replacement, then resamples the samples within every drawn
stratum, so training randomness (seed to seed) and evaluation noise (sample to sample) both enter the
interval; with one stratum it is the sample-level bootstrap (`levels` says which).

`paired_bootstrap_many` does the same for several statistics of the same samples with one set of
replicates (what a report with several metrics uses). The work is bounded: with more than `max_work`
sample draws in all, fewer replicates are drawn (never under `min_boot`), and past that the interval is
the normal approximation (delta method for ratios, between- plus within-stratum variance for two
levels); `method` says which was used.

**Tests across seeds.** `paired_seed_test(diffs)` tests the per-seed paired differences (variant -
baseline of the same seed) against zero, two-sided: the Wilcoxon signed-rank test (zero differences
dropped; `scipy.stats.wilcoxon`, exact up to 50 pairs; with ties or zeros the exact distribution given
the ties, computed here, since scipy enumerates all 2**n sign patterns for it) where it can reach
significance, the paired t-test (`scipy.stats.ttest_rel`) otherwise. The rule (`choose_seed_test`) looks
at n and the number of tests m only, never at the data: the smallest two-sided p-value the signed-rank
test can give with n pairs is 2 / 2**n, so it is used when `m * 2 / 2**n <= alpha` (n >= 6 for one
variant at alpha 0.05, 7 for two or three, 8 for four to six); with fewer seeds it could never say
anything, and the t-test (which assumes roughly normal per-seed differences) is used. `holm` is Holm's
step-down adjustment; `seed_verdicts` applies both to the variants of one metric and words the result:
`better` / `worse` (adjusted p <= alpha, in the metric's good / bad direction) or `no evidence` (with a
`reason`), plus the effect size (paired Cohen's d_z = mean / std of the per-seed differences).
docs/statistics.md gives the measured false-positive rates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = [
    "BETTER",
    "NO_EVIDENCE",
    "PAIRED_T",
    "WILCOXON",
    "WORSE",
    "choose_seed_test",
    "holm",
    "mean_std",
    "paired_bootstrap",
    "paired_bootstrap_many",
    "paired_seed_test",
    "ratio",
    "seed_verdicts",
    "two_level_bootstrap",
]

_CHUNK_ELEMENTS = 1_000_000  # bootstrap draws per chunk (about 8 MB of int64 per matrix)
DEFAULT_MAX_WORK = 50_000_000  # n_boot * n sample draws before replicates are reduced
DEFAULT_MIN_BOOT = 200
WILCOXON, PAIRED_T = "wilcoxon_signed_rank", "paired_t_test"
BETTER, WORSE, NO_EVIDENCE = "better", "worse", "no evidence"
_EXACT_MAX = 50  # exact signed-rank distribution up to this many non-zero differences (exact floats)
_ZERO = 1e-12  # |difference| below this is a tie with zero (floating-point noise of metric subtraction)


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


# ----------------------------------------------------------------------------------------- bootstraps


def paired_bootstrap(
    a: Any,
    b: Any,
    *,
    den_a: Any = None,
    den_b: Any = None,
    strata: Any = None,
    resample_strata: bool = False,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    max_work: int = DEFAULT_MAX_WORK,
    min_boot: int = DEFAULT_MIN_BOOT,
) -> dict[str, Any]:
    """Percentile bootstrap CI of `stat(b) - stat(a)` over paired samples.

    a, b: per-sample values of the two runs (same length, same sample order); den_a/den_b: optional
    per-sample denominators (stat = sum(num)/sum(den)); strata: optional group label per sample,
    resampled within (and the groups themselves first, with `resample_strata`). Returns diff (the point
    estimate on all samples), stat_a, stat_b, ci_low, ci_high, confidence, distinguishable (the CI
    excludes 0), n, n_boot (replicates used), method ("bootstrap" or "normal"), levels ("samples" or
    "strata_and_samples"), strata (how many), seed. Replicates whose statistic is undefined (a zero
    denominator) are dropped; with none left, or an undefined point estimate, the CI is None and nothing
    is distinguishable.
    """
    return paired_bootstrap_many(
        {"stat": (a, b, den_a, den_b)},
        strata=strata,
        resample_strata=resample_strata,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        max_work=max_work,
        min_boot=min_boot,
    )["stat"]


def two_level_bootstrap(a: Any, b: Any, *, seeds: Any, **kwargs: Any) -> dict[str, Any]:
    """`paired_bootstrap` resampling the seeds (the label of every sample), then the samples within each
    drawn seed. Keyword arguments as for `paired_bootstrap` (den_a, den_b, n_boot, confidence, seed, ...)."""
    return paired_bootstrap(a, b, strata=seeds, resample_strata=True, **kwargs)


def paired_bootstrap_many(
    stats: Mapping[str, tuple[Any, Any, Any, Any]],
    *,
    strata: Any = None,
    resample_strata: bool = False,
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
    two = bool(resample_strata) and len(groups) > 1
    rows = {name: vals[4 * k : 4 * k + 4] for k, name in enumerate(names)}
    results = {name: _point_estimate(rows[name], confidence, seed, len(groups), two) for name in names}
    if n == 0:
        return results

    boots = n_boot if n_boot * n <= max_work else max_work // n
    if boots < min(min_boot, n_boot):
        for name in names:
            _normal_ci(results[name], rows[name], groups, confidence, two)
        return results
    sums = _bootstrap_sums(vals, groups, boots, seed, two)
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


def _point_estimate(v: np.ndarray, confidence: float, seed: int, k: int, two: bool) -> dict[str, Any]:
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
        "levels": "strata_and_samples" if two else "samples",
        "strata": int(k) if n else 0,
        "seed": int(seed),
    }


def _bootstrap_sums(
    vals: np.ndarray, groups: list[np.ndarray], boots: int, seed: int, two: bool
) -> np.ndarray:
    """(rows of vals, boots): each row's sum in each replicate. Every replicate takes each group `times`
    times (once each, or a multinomial draw of the groups with `two`), each time resampling its samples."""
    rng = np.random.default_rng(seed)
    k = len(groups)
    times = rng.multinomial(k, np.full(k, 1.0 / k), size=boots) if two else np.ones((boots, k), np.int64)
    sums = np.zeros((vals.shape[0], boots))
    for g, idx_group in enumerate(groups):
        gvals = vals[:, idx_group]
        chunk = max(1, _CHUNK_ELEMENTS // max(idx_group.size, 1))
        for start in range(0, boots, chunk):
            stop = min(boots, start + chunk)
            sums[:, start:stop] += gvals @ _draw_counts(rng, times[start:stop, g], idx_group.size).T
    return sums


def _draw_counts(rng: np.random.Generator, times: np.ndarray, m: int) -> np.ndarray:
    """(replicates, m): how often each of m samples is drawn in `times[r]` resamples of size m each."""
    r = times.size
    if np.all(times == 1):  # one resample per replicate (the one-level bootstrap)
        draw = rng.integers(0, m, size=(r, m))
        flat = (draw + (np.arange(r) * m)[:, None]).ravel()
    else:
        per = np.asarray(times, dtype=np.int64) * m
        flat = np.repeat(np.arange(r) * m, per) + rng.integers(0, m, size=int(per.sum()))
    return np.bincount(flat, minlength=r * m).reshape(r, m).astype(np.float64)


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


def _normal_ci(
    res: dict[str, Any], v: np.ndarray, groups: list[np.ndarray], confidence: float, two: bool
) -> None:
    """Delta-method normal interval for ratio_b - ratio_a: the within-stratum variance summed over the
    strata, plus with `two` the between-strata variance of the strata's totals (k * their variance)."""
    res["method"] = "normal"
    a, da, b, db = v
    if res["diff"] is None:
        return
    ra, rb = float(a.sum() / da.sum()), float(b.sum() / db.sum())
    # linearised per-sample contribution of the difference of the two ratios
    z = (b - rb * db) / db.sum() - (a - ra * da) / da.sum()
    var = sum(g.size * float(z[g].var(ddof=1)) for g in groups if g.size > 1)
    if two:
        totals = np.array([z[g].sum() for g in groups])
        var += len(groups) * float(totals.var())
    half = NormalDist().inv_cdf(0.5 + confidence / 2.0) * math.sqrt(var)
    res["ci_low"], res["ci_high"] = res["diff"] - half, res["diff"] + half
    res["distinguishable"] = bool(res["ci_low"] > 0.0 or res["ci_high"] < 0.0)


# ------------------------------------------------------------------------------- tests across seeds


def choose_seed_test(n: int, m: int = 1, alpha: float = 0.05) -> str | None:
    """The test for n per-seed differences in a family of m tests (see the module docstring): None for
    n < 2, WILCOXON when its smallest two-sided p-value, 2 / 2**n, times m is at most alpha, else PAIRED_T."""
    if n < 2:
        return None
    return WILCOXON if max(m, 1) * 2.0 ** (1 - n) <= alpha else PAIRED_T


def paired_seed_test(diffs: Sequence[float | None], *, m: int = 1, alpha: float = 0.05) -> dict[str, Any]:
    """Two-sided paired test of the per-seed differences against 0 (None / non-finite ones left out).

    Returns test (WILCOXON, PAIRED_T or None), n, statistic, p_value, direction (+1: the differences lean
    positive, -1: negative, 0: neither) and reason (why there is no p-value, else None)."""
    d = np.asarray([float(x) for x in diffs if x is not None and math.isfinite(float(x))], dtype=np.float64)
    d = np.round(np.where(np.abs(d) < _ZERO, 0.0, d), 12)  # floating-point noise of a subtraction: ties
    test = choose_seed_test(d.size, m, alpha)
    out: dict[str, Any] = {"test": test, "n": int(d.size), "statistic": None, "p_value": None, "direction": 0}
    if test is None:
        return {**out, "reason": f"{d.size} seed(s) paired: a test across seeds needs at least 2"}
    if not np.any(d):
        return {**out, "p_value": 1.0, "reason": None}
    statistic, p, direction = _signed_rank(d) if test == WILCOXON else _paired_t(d)
    reason = None if p is not None else "the per-seed differences do not vary: the t-test is undefined"
    return {**out, "statistic": statistic, "p_value": p, "direction": direction, "reason": reason}


def _signed_rank(d: np.ndarray) -> tuple[float | None, float | None, int]:
    """(statistic, p, direction) of the Wilcoxon signed-rank test, zero differences dropped ("wilcox"):
    `scipy.stats.wilcoxon` (exact) without ties or zeros, `_signed_rank_p` (exact given the ties) with."""
    nz = d[d != 0.0]
    ranks = sps.rankdata(np.abs(nz))
    direction = int(np.sign(ranks[nz > 0].sum() - ranks[nz < 0].sum()))
    if (nz.size < d.size or np.unique(np.abs(nz)).size < nz.size) and nz.size <= _EXACT_MAX:
        statistic = float(min(ranks[nz > 0].sum(), ranks[nz < 0].sum()))  # as scipy's two-sided one
        return statistic, _signed_rank_p(nz, ranks), direction
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return _finite_or_none(float(res.statistic)), _finite_or_none(float(res.pvalue)), direction


def _paired_t(d: np.ndarray) -> tuple[float | None, float | None, int]:
    """(statistic, p, direction) of the paired t-test (`scipy.stats.ttest_rel` of d against 0); no p-value
    when the differences do not vary (scipy would give t = inf, p = 0 for a constant non-zero one)."""
    if float(d.std(ddof=1)) <= _ZERO * max(1.0, abs(float(d.mean()))):
        return None, None, 0
    res = sps.ttest_rel(d, np.zeros_like(d))
    return _finite_or_none(float(res.statistic)), _finite_or_none(float(res.pvalue)), int(np.sign(d.mean()))


def _signed_rank_p(nz: np.ndarray, ranks: np.ndarray) -> float:
    """Exact two-sided p-value of the signed-rank statistic (sum of the positive differences' midranks),
    conditional on the ties, from its null distribution (every sign + or - with probability 1/2),
    convolved rank by rank on doubled (integer) midranks. `scipy.stats.wilcoxon` gets this p-value
    with ties or zeros by enumerating all 2**n sign patterns (about 0.5 s at n = 10, 2**13 patterns at
    n = 13, the normal approximation beyond); this is the same number in microseconds."""
    r2 = np.rint(2.0 * ranks).astype(np.int64)
    dist = np.zeros(int(r2.sum()) + 1)
    dist[0] = 1.0
    for r in r2:  # r >= 2: add the distribution shifted by r (this sample's sign +)
        dist[r:] = dist[r:] + dist[:-r]
    dist /= dist.sum()
    t = int(r2[nz > 0].sum())  # doubled sum of the positive differences' ranks
    return float(min(1.0, 2.0 * min(dist[: t + 1].sum(), dist[t:].sum())))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values, in the input's order (None entries stay None and do not count
    in the family): the i-th smallest of m times m - i + 1, made non-decreasing, capped at 1."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    p = np.asarray([pvalues[i] for i in idx], dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    adj = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out: list[float | None] = [None] * len(pvalues)
    for rank, j in enumerate(order):
        out[idx[j]] = float(adj[rank])
    return out


def _effect_size(diffs: Sequence[float | None]) -> dict[str, Any]:
    """Paired Cohen's d_z = mean / std (ddof 1) of the per-seed differences (None below 2 or with std 0)."""
    ms = mean_std(diffs)
    std = ms["std"]
    d_z = ms["mean"] / std if ms["n"] >= 2 and std and std > _ZERO else None
    return {"d_z": d_z, "mean_diff": ms["mean"], "std_diff": std if ms["n"] >= 2 else None, "n": ms["n"]}


def seed_verdicts(
    per_variant: Mapping[str, Sequence[float | None]], *, higher_is_better: bool = True, alpha: float = 0.05
) -> dict[str, dict[str, Any]]:
    """For one metric, {variant: its per-seed differences to the baseline} -> {variant: verdict}.

    Each variant is tested across its seeds (`paired_seed_test`, the test chosen for the family of all
    the variants given), the p-values are Holm-adjusted across the variants, and the verdict is BETTER /
    WORSE when the adjusted p-value is at most alpha (the direction read with `higher_is_better`), else
    NO_EVIDENCE with a reason. Each verdict holds test, n_seeds, statistic, p_value, p_adjusted,
    correction ("holm"), alpha, verdict, reason and effect_size (d_z, mean_diff, std_diff, n)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    m = len(per_variant)
    tests = {v: paired_seed_test(d, m=m, alpha=alpha) for v, d in per_variant.items()}
    adjusted = dict(zip(tests, holm([t["p_value"] for t in tests.values()]), strict=True))
    out = {}
    for v, t in tests.items():
        p_adj, reason, verdict = adjusted[v], t["reason"], NO_EVIDENCE
        if p_adj is not None and p_adj <= alpha and t["direction"] != 0:
            verdict = BETTER if (t["direction"] > 0) == higher_is_better else WORSE
        elif reason is None:
            reason = (
                f"holm-adjusted p = {p_adj:.3g} > alpha = {alpha:g}" if p_adj is not None else "no p-value"
            )
        out[v] = {
            "test": t["test"],
            "n_seeds": t["n"],
            "statistic": t["statistic"],
            "p_value": t["p_value"],
            "p_adjusted": p_adj,
            "correction": "holm",
            "alpha": alpha,
            "verdict": verdict,
            "reason": reason if verdict == NO_EVIDENCE else None,
            "effect_size": _effect_size(per_variant[v]),
        }
    return out
