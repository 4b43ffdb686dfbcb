"""The order-free keys of `core.metrics.evaluate`: accuracy, top-k, macro F1, NLL, ECE, the similarity-
weighted scores, group accuracy, per-class recall and minimum sensitivity, and the confusion matrix.

    from core.metrics.classification import confusion_matrix, per_class_recall, minimum_sensitivity
    cm = confusion_matrix(targets, pred, num_classes)   # rows = true class, columns = predicted class
    recall = per_class_recall(cm)                       # [TP_c / support_c, or None without support]
    minimum_sensitivity(recall)                         # the smallest of the defined ones

Every function takes int64 / float64 CPU tensors and returns python floats, with None where the data
leave a value undefined (no samples, no mistakes, a class never true); none raises on N = 0.

- `per_class_recall`: TP_c / (samples whose true class is c), None for a class that is never true.
  scikit-learn's `recall_score(labels=range(C), average=None, zero_division=nan)` with None for nan.
- `minimum_sensitivity`: the smallest recall over the classes that are true at least once (Cruz-Ramirez
  et al. 2014). dlordinal's `minimum_sensitivity` takes scikit-learn's recall over the classes that occur
  in the targets or the predictions, so a class that is predicted but never true counts there as recall
  0 and pulls the minimum to 0; a class without true samples has no sensitivity, so it is left out here.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "ECE_BINS",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "group_accuracy",
    "mean_or_none",
    "minimum_sensitivity",
    "per_class_recall",
    "similarity_metrics",
]

ECE_BINS = 15


def mean_or_none(values: torch.Tensor) -> float | None:
    """The mean as a python float, None for an empty tensor."""
    return float(values.double().mean()) if values.numel() else None


def confusion_matrix(targets: torch.Tensor, pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C x C int64 counts, rows = true class, columns = predicted class."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((targets, pred), torch.ones(targets.numel(), dtype=torch.long), accumulate=True)
    return confusion


def classification_metrics(
    logits: torch.Tensor,
    log_p: torch.Tensor,
    targets: torch.Tensor,
    pred: torch.Tensor,
    confusion: torch.Tensor,
) -> dict[str, Any]:
    """`accuracy`, `top2_accuracy` (C > 2), `top5_accuracy` (C > 5), `macro_f1`, `nll`, `ece`."""
    c = logits.shape[1]
    correct = pred == targets
    out: dict[str, Any] = {"accuracy": mean_or_none(correct)}
    for k in (2, 5):
        if c > k:
            topk = logits.topk(k, dim=1).indices
            out[f"top{k}_accuracy"] = mean_or_none((topk == targets[:, None]).any(dim=1))
    out["macro_f1"] = _macro_f1(confusion)
    out["nll"] = mean_or_none(-log_p.gather(1, targets[:, None]))
    out["ece"] = (
        expected_calibration_error(log_p.exp().max(dim=1).values, correct) if targets.numel() else None
    )
    return out


def _macro_f1(confusion: torch.Tensor) -> float | None:
    """Mean F1 over the classes that occur in the targets or the predictions (F1 = 0 where P + R = 0)."""
    tp = confusion.diagonal().double()
    both = (confusion.sum(dim=1) + confusion.sum(dim=0)).double()
    present = both > 0
    f1 = torch.where(present, 2 * tp / both.clamp(min=1), torch.zeros_like(tp))
    return mean_or_none(f1[present])


def expected_calibration_error(
    confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS
) -> float:
    """Expected calibration error over `bins` equal-width bins (lo, hi] of the top-class confidence."""
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    index = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, bins - 1)
    n = confidence.numel()
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            gap = abs(float(correct[mask].double().mean()) - float(confidence[mask].mean()))
            total += float(mask.sum()) / n * gap
    return total


def similarity_metrics(targets: torch.Tensor, pred: torch.Tensor, similarity: torch.Tensor) -> dict[str, Any]:
    """`mean_similarity` (mean S[y, pred]) and `mistake_severity` (mean 1 - S[y, pred] over mistakes)."""
    sim = similarity[targets, pred]
    wrong = pred != targets
    return {"mean_similarity": mean_or_none(sim), "mistake_severity": mean_or_none(1 - sim[wrong])}


def group_accuracy(targets: torch.Tensor, pred: torch.Tensor, groups: list[int]) -> float | None:
    """Fraction of samples whose prediction lies in the true class's group (or superclass)."""
    g = torch.tensor(groups)
    return mean_or_none(g[targets] == g[pred])


def per_class_recall(confusion: torch.Tensor) -> list[float | None]:
    """TP_c / support_c per class, None for a class that is never true."""
    support = confusion.sum(dim=1)
    tp = confusion.diagonal()
    return [float(tp[k]) / float(support[k]) if support[k] > 0 else None for k in range(len(support))]


def minimum_sensitivity(recall: list[float | None]) -> float | None:
    """The smallest defined per-class recall; None when no class is ever true."""
    defined = [r for r in recall if r is not None]
    return min(defined) if defined else None
