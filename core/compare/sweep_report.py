"""The `sweep` block of a swept comparison's report: per headline metric, a table of the metric against
the swept parameters, one row per (variant, grid point). Pure, like `core.compare.report`, which calls it
with the runs and the report's variant entries.

    block = sweep_block(runs, sweep, report_variants, headline=["accuracy", ...], baseline="baseline")
    row = block["tables"]["accuracy"][0]
    row["point"], row["values"], row["seeds"]        # {"r": 0.2}; the children's stored metrics, by seed
    row["mean"], row["ci_low"], row["ci_high"]       # over seeds, and its Student t interval
    row["diff"], row["diff_ci_low"], row["diff_ci_high"], row["verdict"], row["test"], row["p_adjusted"]

`sweep` is `{"axes": [{"name", "path", "values"}], "points": {child variant name: {"variant", "point"}}}`.
A row's `values` are the stored final metric of each succeeded child of that grid point (so `mean` is
their mean, `std` their standard deviation, ddof 1); `ci_low` / `ci_high` the `confidence` Student t
interval of that mean over seeds (None with fewer than two); `diff` ... `p_adjusted` copy the point's
paired difference to the baseline (`report["variants"][name]["differences"][metric]`: the two-level
bootstrap interval, and the verdict of the paired test across seeds after Holm's correction across every
arm of the comparison). `baseline` holds the same numbers for the baseline, the reference line of the plots.
"""

from __future__ import annotations

import math
from typing import Any

from scipy import stats as sps

from core.status import JobStatus

__all__ = ["sweep_block"]

_FROM_DIFFERENCE = {
    "diff": "diff",
    "diff_ci_low": "ci_low",
    "diff_ci_high": "ci_high",
    "verdict": "verdict",
    "verdict_reason": "verdict_reason",
    "test": "test",
    "p_value": "p_value",
    "p_adjusted": "p_adjusted",
}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _stats(runs: list[Any], metric: str, confidence: float) -> dict[str, Any]:
    """The stored `metric` of the succeeded runs by seed, their mean, std and t interval of the mean."""
    done = sorted(
        (r for r in runs if r.status == JobStatus.succeeded and r.metrics and _number(r.metrics.get(metric))),
        key=lambda r: r.seed,
    )
    values = [float(r.metrics[metric]) for r in done]
    n = len(values)
    mean = sum(values) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else (0.0 if n else None)
    low = high = None
    if n > 1:
        half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
        low, high = mean - half, mean + half
    return {
        "n": n,
        "mean": mean,
        "std": std,
        "ci_low": low,
        "ci_high": high,
        "values": values,
        "seeds": [r.seed for r in done],
        "job_ids": [r.job_id for r in done],
    }


def _row(name: str, where: dict[str, Any], runs: list[Any], entry: dict[str, Any], metric: str, conf: float):
    row = {"name": name, "variant": where.get("variant"), "point": where.get("point") or {}}
    row.update(_stats(runs, metric, conf))
    d = (entry.get("differences") or {}).get(metric) or {}
    row.update({key: d.get(src) for key, src in _FROM_DIFFERENCE.items()})
    return row


def sweep_block(
    runs: list[Any],
    sweep: dict[str, Any],
    report_variants: dict[str, Any],
    *,
    headline: list[str],
    baseline: str,
    confidence: float,
) -> dict[str, Any]:
    """The report's `sweep` block (see the module docstring); rows in the report's variant order."""
    points = sweep.get("points") or {}
    names = [n for n in report_variants if n in points]
    by_name: dict[str, list[Any]] = {}
    for r in runs:
        by_name.setdefault(r.variant, []).append(r)
    return {
        "axes": list(sweep.get("axes") or []),
        "variants": list(dict.fromkeys(points[n].get("variant") for n in names)),
        "confidence": confidence,
        "interval": "student_t_over_seeds",
        "interval_detail": (
            f"ci_low / ci_high: {round(100 * confidence)}% Student t interval of the mean over seeds; "
            "diff_ci_low / diff_ci_high: the two-level bootstrap interval of the difference to the baseline"
        ),
        "baseline": {m: _stats(by_name.get(baseline, []), m, confidence) for m in headline},
        "tables": {
            m: [_row(n, points[n], by_name.get(n, []), report_variants[n], m, confidence) for n in names]
            for m in headline
        },
    }
