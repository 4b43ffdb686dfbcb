"""The report of a comparison, built from its children's final metrics, epochs and predictions. Pure: it
reads nothing; `core.compare.service` loads the children (`ChildRun`) and stores what this returns.

    report = build_report(runs, classes=..., similarity_spec=..., seeds=[10, 11, 12],
                          variants=["baseline", "simloss"])
    report["variants"]["simloss"]["metrics"]["accuracy"]        # {"mean", "std", "n", "values"}
    d = report["variants"]["simloss"]["differences"]["mistake_severity"]
    d["diff"], d["ci_low"], d["ci_high"], d["per_seed"]        # the paired difference and its interval
    d["verdict"], d["test"], d["p_adjusted"], d["effect_size"]  # "better" / "worse" / "no evidence"

What it holds (every float finite or None, so it stores as JSON on PostgreSQL too):

- `runs`: one entry per child job: variant, seed, job_id, status, error, the final metrics as stored
  (confusion matrix left out), epochs completed.
- `variants[name]`: `metrics`: every scalar metric of the succeeded runs as mean +- std (ddof 1) over
  seeds; `confusion_matrix`: summed over seeds; `curves`: per epoch, the mean over seeds of the train
  loss and the validation loss / accuracy / similarity metrics; and, for every variant but the baseline,
  `differences`: per headline metric the paired difference variant - baseline (each seed's variant
  paired with the baseline of the same seed, which saw the same split):
  - `per_seed`: the differences of the stored metrics seed by seed (`per_seed_mean`: their mean +- std).
  - `diff`: the point estimate over the evaluation samples pooled over seeds (`baseline_value` /
    `variant_value`: the pooled statistics), and `ci_low` / `ci_high`: its two-level bootstrap interval
    (resample the seeds, then the samples within each drawn seed; `levels` says "samples" when only one
    seed was paired). `distinguishable`: the interval excludes 0; `improved` / `worse`: it does so in
    the metric's good / bad direction (`better`: "higher" / "lower").
  - `verdict`: "better", "worse" or "no evidence" (with `verdict_reason`), from the paired test across
    seeds on `per_seed` (`test`: "wilcoxon_signed_rank" or "paired_t_test", chosen by the rule of
    `core.compare.stats.choose_seed_test`) after Holm's correction across the comparison's variants, per
    metric (`p_value`, `p_adjusted`, `correction`: "holm", `alpha`). One seed: no test, "no evidence".
  - `effect_size`: paired Cohen's d_z of the per-seed differences, and the mean difference with its
    interval (`mean_diff`, `ci_low`, `ci_high`).
- `statistics`: alpha, the correction, the tests and the rule choosing them, the interval's method.
- `headline`: the headline metrics that apply to this spec (accuracy, mistake_severity,
  mean_similarity, then mean_class_distance for ordinal and group_accuracy for groups/hierarchy specs).
- `similarity`: the C x C matrix, and confusion matrices, only while C <= MAX_MATRIX_CLASSES.
- `sweep` (swept comparisons only; `core.compare.sweep_report`): the axes, and per headline metric a
  table of the metric against the grid point: per (variant, point) the children's stored values by seed,
  mean, std and a Student t interval of the mean, and the point's difference to the baseline with its
  interval, verdict, test and Holm-adjusted p-value (every grid point is a variant of the Holm family).

- `evaluated_on`: "test" when every succeeded child reports test metrics (`final_metrics.evaluated_on`;
  its per-sample statistics then use the children's test predictions, `test_indices` / `test_targets` /
  `test_probs`), "val" when none does, "mixed" otherwise; `warnings` says when the numbers are not from
  a test split.

Per-sample statistics mirror `core.metrics.evaluate` (pred = argmax of the stored probabilities):
accuracy = mean 1[pred = y]; mean_similarity = mean S[y, pred]; mistake_severity = sum (1 - S[y, pred])
over mistakes / number of mistakes; mean_class_distance = mean |v_y - v_pred| (shorter way round when
cyclic); group_accuracy = mean 1[group(pred) = group(y)]. Pooled over seeds of equal validation size,
a mean statistic equals the mean over seeds of the stored metric.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.compare.stats import PAIRED_T, WILCOXON, mean_std, paired_bootstrap_many, seed_verdicts
from core.compare.sweep_report import sweep_block
from core.jsonsafe import json_safe
from core.status import JobStatus

__all__ = [
    "HEADLINE",
    "HIGHER_IS_BETTER",
    "MAX_MATRIX_CLASSES",
    "REPORT_VERSION",
    "ChildRun",
    "build_report",
    "per_sample_statistics",
    "similarity_info",
]

REPORT_VERSION = 2
HEADLINE = ("accuracy", "mistake_severity", "mean_similarity", "mean_class_distance", "group_accuracy")
HIGHER_IS_BETTER = {
    "accuracy": True,
    "top2_accuracy": True,
    "top5_accuracy": True,
    "macro_f1": True,
    "mean_similarity": True,
    "group_accuracy": True,
    "mistake_severity": False,
    "mean_class_distance": False,
    "nll": False,
    "ece": False,
    "loss": False,
}
MAX_MATRIX_CLASSES = 100
CURVE_KEYS = (
    "loss",
    "accuracy",
    "mean_similarity",
    "mistake_severity",
    "mean_class_distance",
    "group_accuracy",
)
_SKIP_METRICS = {"confusion_matrix", "count"}


@dataclass
class ChildRun:
    """One child job as the report sees it."""

    job_id: str
    variant: str
    seed: int
    status: str
    metrics: dict[str, Any] | None = None  # the job's final metrics (evaluate(...) + "loss")
    history: list[dict[str, Any]] = field(default_factory=list)  # epoch records, in epoch order
    predictions: dict[str, np.ndarray] | None = None  # indices, targets, probs (val); test_* (test)
    error: dict[str, Any] | None = None
    epochs_completed: int | None = None


# ----------------------------------------------------------------------------------------- statistics


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def per_sample_statistics(
    targets: np.ndarray,
    probs: np.ndarray,
    similarity: np.ndarray,
    values: np.ndarray | None = None,
    period: float | None = None,
    groups: list[int] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{metric: (per-sample numerator, per-sample denominator or None)}; see the module docstring."""
    y = np.asarray(targets, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    s = np.asarray(similarity, dtype=np.float64)[y, pred]
    correct = (pred == y).astype(np.float64)
    wrong = 1.0 - correct
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "accuracy": (correct, None),
        "mistake_severity": ((1.0 - s) * wrong, wrong),
        "mean_similarity": (s, None),
    }
    if values is not None:
        v = np.asarray(values, dtype=np.float64)
        d = np.abs(v[y] - v[pred])
        if period is not None:
            d = np.remainder(d, period)
            d = np.minimum(d, period - d)
        out["mean_class_distance"] = (d, None)
    if groups is not None:
        g = np.asarray(groups)
        out["group_accuracy"] = ((g[y] == g[pred]).astype(np.float64), None)
    return out


def similarity_info(similarity_spec: Any, classes: list[str]):
    """(S as float64 numpy C x C, ordinal values or None, cyclic period or None, groups or None)."""
    from core.similarity import build_similarity, class_groups, class_values

    c = len(classes)
    if similarity_spec is None:
        return np.eye(c), None, None, None
    sim = build_similarity(similarity_spec, classes).detach().cpu().numpy().astype(np.float64)
    values, period = class_values(similarity_spec, classes)
    groups = class_groups(similarity_spec, classes)
    return sim, (None if values is None else values.detach().cpu().numpy()), period, groups


NO_TEST_WARNING = "no test split: numbers are from the validation split that selected the epoch"
_TEST_KEYS = {"indices": "test_indices", "targets": "test_targets", "probs": "test_probs"}


def _evaluated(predictions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The predictions the final metrics were computed on: the test rows' when stored, else the val's."""
    if all(k in predictions for k in _TEST_KEYS.values()):
        return {k: predictions[t] for k, t in _TEST_KEYS.items()}
    return predictions


def _evaluated_on(runs: list[ChildRun]) -> tuple[str, list[str]]:
    """("test" | "val" | "mixed", warnings) from the succeeded children's final metrics."""
    done = [r for r in runs if _succeeded(r)]
    seen = {str(r.metrics.get("evaluated_on", "val")) for r in done}
    if seen == {"test"}:
        missing = [r for r in done if r.predictions is not None and "test_probs" not in r.predictions]
        note = "test predictions missing: per-sample intervals are from the validation predictions"
        return "test", [note] if missing else []
    if seen <= {"val"}:
        return "val", [NO_TEST_WARNING]
    return "mixed", ["some children have a test split and some do not: their numbers are not comparable"]


def _aligned(base: dict[str, np.ndarray], other: dict[str, np.ndarray]):
    """The two runs' (targets, probs) restricted to their common validation samples, in one order."""
    ib, io_ = np.asarray(base["indices"]), np.asarray(other["indices"])
    if ib.shape == io_.shape and np.array_equal(ib, io_):
        return base["targets"], base["probs"], other["targets"], other["probs"]
    _common, pb, po = np.intersect1d(ib, io_, return_indices=True)
    return base["targets"][pb], base["probs"][pb], other["targets"][po], other["probs"][po]


def _curves(runs: list[ChildRun]) -> dict[str, list]:
    by_epoch: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for rec in run.history:
            epoch = rec.get("epoch")
            if not isinstance(epoch, int):
                continue
            train = rec.get("train") or {}
            val = rec.get("val") or {}
            if _is_number(train.get("loss")):
                by_epoch[epoch]["train_loss"].append(float(train["loss"]))
            for key in CURVE_KEYS:
                if _is_number(val.get(key)):
                    by_epoch[epoch][f"val_{key}"].append(float(val[key]))
    epochs = sorted(by_epoch)
    keys = sorted({k for e in epochs for k in by_epoch[e]})
    out: dict[str, list] = {"epoch": epochs}
    for k in keys:
        out[k] = [float(np.mean(by_epoch[e][k])) if by_epoch[e].get(k) else None for e in epochs]
    return out


# --------------------------------------------------------------------------------------------- report


def build_report(
    runs: list[ChildRun],
    *,
    classes: list[str],
    similarity_spec: Any,
    seeds: list[int],
    variants: list[str],
    baseline: str = "baseline",
    n_boot: int = 2000,
    confidence: float = 0.95,
    bootstrap_seed: int = 0,
    alpha: float = 0.05,
    sweep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The comparison report (see the module docstring) from its child runs; with `sweep` (`{"axes",
    "points"}`, see `core.compare.sweep_report`) the report's `sweep` block too."""
    sim_info = similarity_info(similarity_spec, classes)
    c = len(classes)
    headline = _applicable_headline(sim_info, c)
    by_key = {(r.variant, r.seed): r for r in runs}
    boot = {"n_boot": n_boot, "confidence": confidence, "boot_seed": bootstrap_seed}
    report_variants: dict[str, Any] = {}
    for name in variants:
        entry = _variant_entry(name, runs, c)
        if name != baseline:
            entry["differences"] = _differences(name, baseline, seeds, by_key, headline, sim_info, **boot)
        report_variants[name] = entry
    _add_verdicts(report_variants, headline, alpha)
    evaluated_on, warnings = _evaluated_on(runs)
    report = {
        "version": REPORT_VERSION,
        "classes": list(classes),
        "similarity_spec": similarity_spec,
        "similarity": sim_info[0].tolist() if c <= MAX_MATRIX_CLASSES else None,
        "seeds": list(seeds),
        "variants_order": list(variants),
        "baseline": baseline,
        "headline": headline,
        "better": {m: ("higher" if up else "lower") for m, up in HIGHER_IS_BETTER.items()},
        "confidence": confidence,
        "n_boot": n_boot,
        "bootstrap_seed": bootstrap_seed,
        "alpha": alpha,
        "statistics": _statistics_info(alpha, confidence, n_boot),
        "runs": _run_entries(runs, variants),
        "variants": report_variants,
        "evaluated_on": evaluated_on,
        "warnings": warnings,
    }
    if sweep:
        report["sweep"] = sweep_block(
            runs, sweep, report_variants, headline=headline, baseline=baseline, confidence=confidence
        )
    return json_safe(report)


def _statistics_info(alpha: float, confidence: float, n_boot: int) -> dict[str, Any]:
    """How the differences' intervals and verdicts were made (what the pages and the CLI print)."""
    return {
        "alpha": alpha,
        "correction": "holm",
        "correction_family": "the variants of the comparison, per metric",
        "tests": [WILCOXON, PAIRED_T],
        "test_rule": (
            f"{WILCOXON} when its smallest two-sided p-value with n seeds paired, 2 / 2**n, times the "
            f"number of variants is at most alpha; {PAIRED_T} otherwise; no test with one seed"
        ),
        "interval": "two_level_bootstrap",
        "interval_detail": (
            f"{round(100 * confidence)}% percentile interval, {n_boot} replicates: resample the seeds, "
            "then the evaluation samples within each drawn seed"
        ),
        "effect_size": "paired Cohen's d_z of the per-seed differences",
    }


def _add_verdicts(report_variants: dict[str, Any], headline: list[str], alpha: float) -> None:
    """Per headline metric, test every variant's per-seed differences and Holm-correct across them."""
    others = {v: e["differences"] for v, e in report_variants.items() if "differences" in e}
    for m in headline:
        verdicts = seed_verdicts(
            {v: [p["diff"] for p in d[m]["per_seed"]] for v, d in others.items()},
            higher_is_better=HIGHER_IS_BETTER.get(m, True),
            alpha=alpha,
        )
        for v, d in others.items():
            r = verdicts[v]
            d[m].update(
                verdict=r["verdict"],
                verdict_reason=r["reason"],
                test=r["test"],
                statistic=r["statistic"],
                p_value=r["p_value"],
                p_adjusted=r["p_adjusted"],
                correction=r["correction"],
                alpha=r["alpha"],
                effect_size={
                    "d_z": r["effect_size"]["d_z"],
                    "mean_diff": d[m]["diff"],
                    "ci_low": d[m]["ci_low"],
                    "ci_high": d[m]["ci_high"],
                    "confidence": d[m]["confidence"],
                },
            )


def _applicable_headline(sim_info: tuple, c: int) -> list[str]:
    """The HEADLINE metrics this similarity has per-sample statistics for."""
    probe = per_sample_statistics(np.zeros(1, dtype=np.int64), np.eye(c)[:1], *sim_info)
    return [m for m in HEADLINE if m in probe]


def _succeeded(run: ChildRun) -> bool:
    return run.status == JobStatus.succeeded and run.metrics is not None


def _variant_entry(name: str, runs: list[ChildRun], c: int) -> dict[str, Any]:
    """A variant's runs, its metrics as mean +- std over seeds, its curves and summed confusion matrix."""
    all_mine = sorted((r for r in runs if r.variant == name), key=lambda r: r.seed)
    mine = [r for r in all_mine if _succeeded(r)]
    keys = sorted(
        {
            k
            for r in mine
            for k, v in r.metrics.items()
            if k not in _SKIP_METRICS and (_is_number(v) or v is None)
        }
    )
    entry: dict[str, Any] = {
        "job_ids": [r.job_id for r in all_mine],
        "runs": len(all_mine),
        "succeeded": len(mine),
        "metrics": {k: mean_std([r.metrics.get(k) for r in mine]) for k in keys},
        "curves": _curves(mine),
        "confusion_matrix": None,
    }
    if c <= MAX_MATRIX_CLASSES:
        mats = [np.asarray(r.metrics.get("confusion_matrix") or []) for r in mine]
        mats = [m for m in mats if m.shape == (c, c)]
        if mats:
            entry["confusion_matrix"] = np.sum(mats, axis=0).astype(np.int64).tolist()
    return entry


def _run_entries(runs: list[ChildRun], variants: list[str]) -> list[dict[str, Any]]:
    """One entry per child run, by seed then variant order (confusion matrix left out)."""
    order = {v: i for i, v in enumerate(variants)}
    return [
        {
            "job_id": r.job_id,
            "variant": r.variant,
            "seed": r.seed,
            "status": r.status,
            "error": r.error,
            "epochs_completed": r.epochs_completed,
            "metrics": {k: v for k, v in r.metrics.items() if k != "confusion_matrix"} if r.metrics else None,
        }
        for r in sorted(runs, key=lambda r: (r.seed, order.get(r.variant, len(order)), r.variant))
    ]


@dataclass
class _Pairs:
    """Per headline metric: the pooled per-sample (numerator, denominator) of baseline and variant, the
    seed of every pooled sample, and the per-seed differences of the stored metrics."""

    pooled: dict[str, list[list[np.ndarray]]]
    strata: list[np.ndarray]
    per_seed: dict[str, list[dict[str, Any]]]


def _pair_seeds(
    name: str,
    baseline: str,
    seeds: list[int],
    by_key: dict[tuple[str, int], ChildRun],
    headline: list[str],
    sim_info: tuple,
) -> _Pairs:
    pairs = _Pairs({m: [[], [], [], []] for m in headline}, [], {m: [] for m in headline})
    for seed in seeds:
        b, v = by_key.get((baseline, seed)), by_key.get((name, seed))
        if b is None or v is None or b.metrics is None or v.metrics is None:
            continue
        for m in headline:
            mb, mv = b.metrics.get(m), v.metrics.get(m)
            diff = mv - mb if _is_number(mb) and _is_number(mv) else None
            pairs.per_seed[m].append({"seed": seed, "baseline": mb, "variant": mv, "diff": diff})
        if b.predictions is None or v.predictions is None:
            continue
        tb, pb, tv, pv = _aligned(_evaluated(b.predictions), _evaluated(v.predictions))
        if not np.array_equal(tb, tv):  # not the same samples after all: nothing to pair
            continue
        sb = per_sample_statistics(tb, pb, *sim_info)
        sv = per_sample_statistics(tv, pv, *sim_info)
        ones = np.ones(len(tb))
        for m in headline:
            pairs.pooled[m][0].append(sb[m][0])
            pairs.pooled[m][1].append(ones if sb[m][1] is None else sb[m][1])
            pairs.pooled[m][2].append(sv[m][0])
            pairs.pooled[m][3].append(ones if sv[m][1] is None else sv[m][1])
        pairs.strata.append(np.full(len(tb), seed))
    return pairs


def _no_ci(confidence: float, boot_seed: int) -> dict[str, Any]:
    return {
        "diff": None,
        "stat_a": None,
        "stat_b": None,
        "ci_low": None,
        "ci_high": None,
        "confidence": confidence,
        "distinguishable": False,
        "n": 0,
        "n_boot": 0,
        "method": None,
        "levels": None,
        "strata": 0,
        "seed": boot_seed,
    }


def _differences(
    name: str,
    baseline: str,
    seeds: list[int],
    by_key: dict[tuple[str, int], ChildRun],
    headline: list[str],
    sim_info: tuple,
    *,
    n_boot: int,
    confidence: float,
    boot_seed: int,
) -> dict[str, Any]:
    """Per headline metric: the paired difference variant - baseline (see the module docstring)."""
    pairs = _pair_seeds(name, baseline, seeds, by_key, headline, sim_info)
    cis: dict[str, dict[str, Any]] = {}
    if pairs.strata:
        inputs = {}
        for m in headline:
            a, den_a, b_, den_b = (np.concatenate(parts) for parts in pairs.pooled[m])
            inputs[m] = (a, b_, den_a, den_b)
        cis = paired_bootstrap_many(
            inputs,
            strata=np.concatenate(pairs.strata),
            resample_strata=True,
            n_boot=n_boot,
            confidence=confidence,
            seed=boot_seed,
        )
    out: dict[str, Any] = {}
    for m in headline:
        ci = dict(cis.get(m) or _no_ci(confidence, boot_seed))
        baseline_value, variant_value = ci.pop("stat_a", None), ci.pop("stat_b", None)
        higher = HIGHER_IS_BETTER.get(m, True)
        improved = bool(ci["distinguishable"] and ci["diff"] is not None and ((ci["diff"] > 0) == higher))
        out[m] = {
            **ci,
            "baseline_value": baseline_value,
            "variant_value": variant_value,
            "better": "higher" if higher else "lower",
            "improved": improved,
            "worse": bool(ci["distinguishable"] and not improved),
            "seeds_paired": len(pairs.strata),
            "per_seed": pairs.per_seed[m],
            "per_seed_mean": mean_std([d["diff"] for d in pairs.per_seed[m]]),
        }
    return out
