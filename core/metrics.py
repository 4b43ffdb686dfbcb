"""Evaluation metrics for a classifier, similarity-aware, as one JSON-ready dict.

    from core.metrics import evaluate
    m = evaluate(logits, targets, similarity, classes, similarity_spec)
    m["accuracy"], m["mistake_severity"], m["confusion_matrix"]

Keys (python floats / ints / None / lists; "pred" = argmax of the logits):

- `count`: N.
- `accuracy`; `top2_accuracy` only when C > 2, `top5_accuracy` only when C > 5.
- `macro_f1`: unweighted mean of per-class F1 over the classes that occur in the targets or the
  predictions (a class with neither is left out; F1 = 0 where precision + recall = 0), as
  scikit-learn's `f1_score(average="macro")`.
- `nll`: mean -log softmax(logits)[y].
- `ece`: expected calibration error with 15 equal-width confidence bins (lo, hi]:
  sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)| (Guo et al. 2017).
- `mean_similarity`: mean S[y, pred] (S = I when `similarity` is None, which makes it the accuracy).
- `mistake_severity`: mean (1 - S[y, pred]) over the mistakes only; None when there are none.
- `mean_class_distance`: only for ordinal similarity specs: mean |v_y - v_pred| with the spec's class
  values (class index without), the shorter way round for cyclic specs.
- `group_accuracy`: only for groups / hierarchy specs: fraction with group(pred) == group(y)
  (`core.similarity.class_groups`: the group, or the parent in the hierarchy).
- `confusion_matrix`: C x C list of lists of ints, rows = true class, columns = predicted class.

Keys that do not apply to the classes or spec are absent; values that the data leave undefined are
None. With N = 0 every rate is None and the confusion matrix is all zeros (no exception).
"""

from __future__ import annotations

from typing import Any

import torch

from core.similarity import check_classes, class_groups, class_values

__all__ = ["ECE_BINS", "evaluate"]

ECE_BINS = 15


def evaluate(
    logits: Any,
    targets: Any,
    similarity: torch.Tensor | None,
    classes: list[str],
    similarity_spec: Any = None,
) -> dict[str, Any]:
    """All metrics of `logits` (N, C) against integer `targets` (N,); see the module docstring."""
    classes = check_classes(classes)
    c = len(classes)
    z = torch.as_tensor(logits).detach().to(torch.float64).cpu()
    y = torch.as_tensor(targets).detach().long().cpu()
    if z.dim() != 2 or z.shape[1] != c or y.dim() != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"need logits (N, {c}) and targets (N,); got {tuple(z.shape)} and {tuple(y.shape)}")
    n = z.shape[0]
    if n and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"targets must lie in [0, {c})")
    s = (
        torch.eye(c, dtype=torch.float64)
        if similarity is None
        else torch.as_tensor(similarity).detach().to(torch.float64).cpu()
    )
    if s.shape != (c, c):
        raise ValueError(f"similarity must be {c} x {c}, got {tuple(s.shape)}")

    out: dict[str, Any] = {"count": int(n)}
    confusion = torch.zeros(c, c, dtype=torch.long)
    if n == 0:
        out.update(
            accuracy=None, macro_f1=None, nll=None, ece=None, mean_similarity=None, mistake_severity=None
        )
        for k in (2, 5):
            if c > k:
                out[f"top{k}_accuracy"] = None
        if class_values(similarity_spec, classes)[0] is not None:
            out["mean_class_distance"] = None
        if class_groups(similarity_spec, classes) is not None:
            out["group_accuracy"] = None
        out["confusion_matrix"] = confusion.tolist()
        return out

    log_p = torch.log_softmax(z, dim=1)
    pred = z.argmax(dim=1)
    correct = pred == y
    out["accuracy"] = float(correct.double().mean())
    for k in (2, 5):
        if c > k:
            topk = z.topk(k, dim=1).indices
            out[f"top{k}_accuracy"] = float((topk == y[:, None]).any(dim=1).double().mean())

    confusion.index_put_((y, pred), torch.ones(n, dtype=torch.long), accumulate=True)
    tp = confusion.diagonal().double()
    support = confusion.sum(dim=1).double()
    predicted = confusion.sum(dim=0).double()
    present = (support + predicted) > 0
    f1 = torch.where(
        support + predicted > 0, 2 * tp / (support + predicted).clamp(min=1), torch.zeros_like(tp)
    )
    out["macro_f1"] = float(f1[present].mean())
    out["nll"] = float(-log_p.gather(1, y[:, None]).mean())
    out["ece"] = _ece(log_p.exp().max(dim=1).values, correct)

    sim = s[y, pred]
    out["mean_similarity"] = float(sim.mean())
    out["mistake_severity"] = float((1 - sim[~correct]).mean()) if (~correct).any() else None

    values, period = class_values(similarity_spec, classes)
    if values is not None:
        v = values.to(torch.float64)
        d = (v[y] - v[pred]).abs()
        if period is not None:
            d = torch.remainder(d, period)
            d = torch.minimum(d, period - d)
        out["mean_class_distance"] = float(d.mean())
    groups = class_groups(similarity_spec, classes)
    if groups is not None:
        g = torch.tensor(groups)
        out["group_accuracy"] = float((g[y] == g[pred]).double().mean())
    out["confusion_matrix"] = confusion.tolist()
    return out


def _ece(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error over `bins` equal-width bins (lo, hi] of the top-class confidence."""
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    index = (torch.bucketize(confidence, edges, right=False) - 1).clamp(0, bins - 1)
    n = confidence.numel()
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += (
                float(mask.sum())
                / n
                * abs(float(correct[mask].double().mean()) - float(confidence[mask].mean()))
            )
    return total
