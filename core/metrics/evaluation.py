"""`evaluate`: every metric of a classifier's logits against the targets, as one JSON-ready dict.

    from core.metrics import evaluate
    m = evaluate(logits, targets, similarity, classes, similarity_spec)

The keys are listed in `core.metrics`; each family lives in its own module (`classification`,
`ordinal`, `hierarchical`, `decisions`), this one only checks the inputs and puts them together.
"""

from __future__ import annotations

from typing import Any

import torch

from core.metrics.classification import (
    classification_metrics,
    confusion_matrix,
    group_accuracy,
    minimum_sensitivity,
    per_class_recall,
    similarity_metrics,
)
from core.metrics.decisions import decision_table
from core.metrics.hierarchical import hierarchical_metrics, lca_heights
from core.metrics.ordinal import OrdinalScale, ordinal_metrics
from core.similarity import check_classes, class_groups

__all__ = ["evaluate"]


def evaluate(
    logits: Any,
    targets: Any,
    similarity: torch.Tensor | None,
    classes: list[str],
    similarity_spec: Any = None,
    *,
    decision_threshold: float = 0.5,
) -> dict[str, Any]:
    """All metrics of `logits` (N, C) against integer `targets` (N,); see `core.metrics` for the keys.

    `decision_threshold` is the median rule's threshold in the `decisions` table."""
    classes = check_classes(classes)
    z, y, s = _inputs(logits, targets, similarity, len(classes))
    log_p = torch.log_softmax(z, dim=1)
    pred = z.argmax(dim=1)
    confusion = confusion_matrix(y, pred, len(classes))
    recall = per_class_recall(confusion)
    scale = OrdinalScale.of(similarity_spec, classes)
    groups = class_groups(similarity_spec, classes)
    heights = lca_heights(similarity_spec, classes)

    out: dict[str, Any] = {"count": int(y.numel())}
    out.update(classification_metrics(z, log_p, y, pred, confusion))
    out.update(similarity_metrics(y, pred, s))
    if scale is not None:
        out.update(ordinal_metrics(log_p.exp(), y, pred, confusion, scale, recall))
    if groups is not None:
        out["group_accuracy"] = group_accuracy(y, pred, groups)
    out["per_class_recall"] = recall
    out["minimum_sensitivity"] = minimum_sensitivity(recall)
    if heights is not None:
        out.update(hierarchical_metrics(z, y, heights))
    out["decisions"] = decision_table(
        log_p.exp(), y, s, scale, groups, argmax_pred=pred, threshold=decision_threshold
    )
    out["confusion_matrix"] = confusion.tolist()
    return out


def _inputs(logits: Any, targets: Any, similarity: Any, c: int) -> tuple[torch.Tensor, ...]:
    """(logits (N, C) float64, targets (N,) int64, S (C, C) float64) on the CPU; ValueError if malformed."""
    z = torch.as_tensor(logits).detach().to(torch.float64).cpu()
    y = torch.as_tensor(targets).detach().long().cpu()
    if z.dim() != 2 or z.shape[1] != c or y.dim() != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"need logits (N, {c}) and targets (N,); got {tuple(z.shape)} and {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"targets must lie in [0, {c})")
    if similarity is None:
        s = torch.eye(c, dtype=torch.float64)
    else:
        s = torch.as_tensor(similarity).detach().to(torch.float64).cpu()
    if s.shape != (c, c):
        raise ValueError(f"similarity must be {c} x {c}, got {tuple(s.shape)}")
    return z, y, s
