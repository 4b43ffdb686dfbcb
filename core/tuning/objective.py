"""Where a trial job's objective value comes from: each epoch's validation record (what the pruner is fed)
and, once the job has succeeded, its final metrics on the validation split.

    epoch_value(record, "accuracy")          # record["val"]["accuracy"], or None
    final_value(job.final_metrics, "accuracy")

Final metrics evaluated on another split (`final_metrics.evaluated_on` = "test") carry the validation
split's numbers under `final_metrics.val`: tuning reads those, never the test split's.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["epoch_value", "final_value", "val_metrics"]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def val_metrics(final_metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The validation split's metrics among a job's final metrics."""
    fm = final_metrics or {}
    nested = fm.get("val")
    if isinstance(nested, dict):
        return nested
    return fm if fm.get("evaluated_on", "val") == "val" else {}


def final_value(final_metrics: dict[str, Any] | None, metric: str) -> float | None:
    """`metric` on the validation split of a succeeded job; None when it is missing or not finite."""
    return _number(val_metrics(final_metrics).get(metric))


def epoch_value(record: dict[str, Any], metric: str) -> float | None:
    """`metric` of one epoch's validation record; None when it is missing or not finite."""
    return _number((record.get("val") or {}).get(metric))
