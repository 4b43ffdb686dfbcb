"""The ordinal keys of `core.metrics.evaluate`, present only for ordinal similarity specs.

    from core.metrics.ordinal import OrdinalScale, ordinal_metrics
    scale = OrdinalScale.of(similarity_spec, classes)     # None unless the spec is ordinal
    ordinal_metrics(probs, targets, pred, confusion, scale, recall)

The class distance d(i, j) is the one of `mean_class_distance`: |v_i - v_j| with the spec's class values
(the class index without them), the shorter way round a circle of the spec's period when cyclic. The rank
order sorts the classes by value (stably, so class order breaks ties); rank distance counts steps in it.

- `mean_class_distance`: mean d(y, pred).
- `amae` / `mmae`: per true class c, MAE_c = mean d(c, pred) over the samples of class c; `amae` is the
  mean and `mmae` the largest MAE_c over the classes that are true at least once (Baccianella et al.
  2009; Cruz-Ramirez et al. 2014). dlordinal's `amae` / `mmae` index the classes that occur in the
  targets or the predictions, so when a class occurs in neither the classes beyond it move one step
  closer and the error shrinks; here d always comes from the spec. Equal to dlordinal's where every
  class occurs and the values are the class indices.
- `off_by_one_accuracy`: fraction with rank distance <= 1 (round the ring of ranks when cyclic).
  dlordinal's `accuracy_off1` builds its confusion matrix over the classes that are true at least once,
  which drops every sample predicted as a class that is never true (from the numerator and the
  denominator); here every sample counts.
- `quadratic_weighted_kappa`: 1 - sum(W * O) / sum(W * E) with O the confusion matrix, E the outer
  product of its row and column sums / N and W = d^2 (Cohen 1968); scikit-learn's
  `cohen_kappa_score(weights="quadratic", labels=range(C))` when the values are the class indices. None
  where the denominator is 0 (all targets and predictions one class).
- `ranked_probability_score` (not cyclic): mean over samples of sum_k (F_p(k) - F_y(k))^2, the cumulative
  distributions taken in rank order, not divided by C - 1 (Epstein 1969; Janitza et al. 2016; as dlordinal).
- `gmsec` (not cyclic): sqrt(recall(first) * recall(last)) for the first and the last class in rank
  order (Vargas et al. 2024); None when one of them is never true. dlordinal's `gmsec` takes the first
  and last of the classes that occur in the targets or predictions, with recall 0 for a class never true.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from core.metrics.classification import mean_or_none
from core.similarity import class_values

__all__ = [
    "OrdinalScale",
    "gmsec",
    "mean_absolute_errors",
    "off_by_one_accuracy",
    "ordinal_metrics",
    "quadratic_weighted_kappa",
    "ranked_probability_score",
]


@dataclass(frozen=True)
class OrdinalScale:
    """Ordered classes: per-class `values` (C,) float64 and the cyclic `period` (None when not cyclic)."""

    values: torch.Tensor
    period: float | None = None

    @classmethod
    def of(cls, similarity_spec: Any, classes: list[str]) -> OrdinalScale | None:
        """The scale of an ordinal spec over `classes`; None for every other spec (and None)."""
        values, period = class_values(similarity_spec, classes)
        return None if values is None else cls(values.to(torch.float64), period)

    @property
    def cyclic(self) -> bool:
        return self.period is not None

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """d(a, b) for class indices (broadcast), the shorter way round when cyclic."""
        d = (self.values[a] - self.values[b]).abs()
        if self.period is not None:
            d = torch.remainder(d, self.period)
            d = torch.minimum(d, self.period - d)
        return d

    def distance_matrix(self) -> torch.Tensor:
        k = torch.arange(self.values.numel())
        return self.distance(k[:, None], k[None, :])

    def order(self) -> torch.Tensor:
        """Class indices sorted by value (stable: class order breaks ties)."""
        return torch.argsort(self.values, stable=True)

    def rank_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Steps between the classes' ranks (equal values share a rank), round the ring when cyclic."""
        levels, rank = torch.unique(self.values, sorted=True, return_inverse=True)
        d = (rank[a] - rank[b]).abs()
        if self.cyclic:
            d = torch.minimum(d, levels.numel() - d)
        return d


def ordinal_metrics(
    probs: torch.Tensor,
    targets: torch.Tensor,
    pred: torch.Tensor,
    confusion: torch.Tensor,
    scale: OrdinalScale,
    recall: list[float | None],
) -> dict[str, Any]:
    """The ordinal keys (see the module docstring); `probs` (N, C) per-class probabilities."""
    distances = scale.distance_matrix()
    amae, mmae = mean_absolute_errors(confusion, distances)
    out: dict[str, Any] = {
        "mean_class_distance": mean_or_none(scale.distance(targets, pred)),
        "amae": amae,
        "mmae": mmae,
        "off_by_one_accuracy": off_by_one_accuracy(targets, pred, scale),
        "quadratic_weighted_kappa": quadratic_weighted_kappa(confusion, distances),
    }
    if not scale.cyclic:
        out["ranked_probability_score"] = ranked_probability_score(probs, targets, scale)
        out["gmsec"] = gmsec(recall, scale)
    return out


def mean_absolute_errors(
    confusion: torch.Tensor, distances: torch.Tensor
) -> tuple[float | None, float | None]:
    """(AMAE, MMAE): the mean and the largest per-true-class MAE over the classes with samples."""
    support = confusion.sum(dim=1).double()
    rows = support > 0
    if not rows.any():
        return None, None
    per_class = (confusion.double() * distances).sum(dim=1)[rows] / support[rows]
    return float(per_class.mean()), float(per_class.max())


def off_by_one_accuracy(targets: torch.Tensor, pred: torch.Tensor, scale: OrdinalScale) -> float | None:
    """Fraction of samples predicted at most one rank away from the truth."""
    return mean_or_none(scale.rank_distance(targets, pred) <= 1)


def quadratic_weighted_kappa(confusion: torch.Tensor, distances: torch.Tensor) -> float | None:
    """Cohen's kappa with weights d^2; None where it is 0 / 0."""
    observed = confusion.double()
    n = observed.sum()
    if n == 0:
        return None
    expected = torch.outer(observed.sum(dim=1), observed.sum(dim=0)) / n
    weights = distances**2
    denominator = (weights * expected).sum()
    if denominator == 0:
        return None
    return float(1 - (weights * observed).sum() / denominator)


def ranked_probability_score(probs: torch.Tensor, targets: torch.Tensor, scale: OrdinalScale) -> float | None:
    """Mean sum_k (F_p(k) - F_y(k))^2 with the cumulative distributions in rank order."""
    order = scale.order()
    onehot = torch.nn.functional.one_hot(targets, probs.shape[1]).double()
    gap = probs[:, order].cumsum(dim=1) - onehot[:, order].cumsum(dim=1)
    return mean_or_none((gap**2).sum(dim=1))


def gmsec(recall: list[float | None], scale: OrdinalScale) -> float | None:
    """Geometric mean of the recalls of the first and the last class in rank order."""
    order = scale.order()
    first, last = recall[int(order[0])], recall[int(order[-1])]
    return None if first is None or last is None else math.sqrt(first * last)
