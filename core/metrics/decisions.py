"""Decision rules: which class to answer from predicted probabilities, and the headline metrics under each.

    from core.metrics.decisions import decide, applicable_rules
    pred = decide(probs, "min_expected_cost", similarity)            # (N,) int64 class indices
    pred = decide(probs, "expected_value", class_values=values)
    pred = decide(p_greater, "median", class_values=values, threshold=0.6, cumulative=True)
    applicable_rules(values, period)   # the rules an evaluation reports for these classes

Rules (`probs` (N, C) per-class probabilities, S the C x C similarity, rows the true class):

- `argmax`: the most probable class.
- `min_expected_cost`: argmin_c sum_j p_j C[j, c] with the cost C = 1 - S, the Bayes decision under the
  similarity (CRM: Karthik et al., "No Cost Likelihood Manipulation at Test Time for Making Better
  Mistakes in Deep Networks", ICLR 2021); no retraining. With S = I it is the argmax.
- `expected_value` (ordered classes): the class whose value is nearest sum_j p_j v_j.
- `median` (ordered classes): the first class in rank order whose cumulative probability reaches
  1 - threshold, i.e. rank = #{k < C - 1 : P(y > k) > threshold} (0.5: the median). With
  `cumulative=True`, `probs` are the (N, C - 1) P(y > k) of an ordinal head (CORAL, CORN) in rank order
  and the same count is taken on them directly (CORAL's rule).

Rank order sorts the classes by `class_values` (stably; class order without values). Ties go to the
first class (in class order for argmax, min_expected_cost, expected_value; the lower rank for median).
`expected_value` and `median` treat the values as a line, so `applicable_rules` leaves them out for
cyclic classes. An unknown rule or a threshold outside (0, 1) is a `SpecError` naming `decision` /
`threshold`; wrong shapes are a ValueError.

`decision_table` is the `decisions` key of `core.metrics.evaluate`: one row per applicable rule with
its `rule` and the headline metrics of its predictions: `accuracy`, `mean_similarity`,
`mistake_severity`, for ordinal specs `mean_class_distance` and `amae`, for groups / hierarchy specs
`group_accuracy` (definitions as in `core.metrics`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch

from core.errors import SpecError
from core.metrics.classification import confusion_matrix, group_accuracy, mean_or_none, similarity_metrics
from core.metrics.ordinal import OrdinalScale, mean_absolute_errors

__all__ = ["DECISION_RULES", "applicable_rules", "decide", "decision_table"]

DECISION_RULES = ("argmax", "min_expected_cost", "expected_value", "median")
_ORDERED_RULES = ("expected_value", "median")


def applicable_rules(class_values: Any = None, period: float | None = None) -> tuple[str, ...]:
    """Every rule for ordered, non-cyclic classes; argmax and min_expected_cost otherwise."""
    if class_values is None or period is not None:
        return tuple(r for r in DECISION_RULES if r not in _ORDERED_RULES)
    return DECISION_RULES


def decide(
    probs: Any,
    rule: str,
    similarity: Any = None,
    class_values: Any = None,
    threshold: float = 0.5,
    *,
    cumulative: bool = False,
) -> torch.Tensor:
    """The (N,) int64 class index that `rule` picks per row of `probs`; see the module docstring."""
    if rule not in DECISION_RULES:
        raise SpecError("decision", f"must be one of {', '.join(DECISION_RULES)}; got {rule!r}")
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not 0 < threshold < 1:
        raise SpecError("threshold", f"must be a number in (0, 1); got {threshold!r}")
    p = torch.as_tensor(probs).detach().to(torch.float64).cpu()
    if p.dim() != 2:
        raise ValueError(f"need probabilities (N, C); got shape {tuple(p.shape)}")
    values = None if class_values is None else torch.as_tensor(class_values).to(torch.float64).cpu()
    if cumulative:
        if rule != "median":
            raise ValueError("cumulative outputs P(y > k) take the median rule; convert them for the others")
        return _median_cumulative(p, values, threshold)
    c = p.shape[1]
    if values is not None and values.shape != (c,):
        raise ValueError(f"class_values must have {c} entries, got shape {tuple(values.shape)}")
    if rule == "argmax":
        return p.argmax(dim=1)
    if rule == "min_expected_cost":
        return _min_expected_cost(p, similarity)
    if values is None and rule == "expected_value":
        raise SpecError("decision", "expected_value needs ordered classes (an ordinal similarity spec)")
    if rule == "expected_value":
        return _nearest_value(p @ values, values)
    return _median(p, values, threshold)


def _min_expected_cost(p: torch.Tensor, similarity: Any) -> torch.Tensor:
    c = p.shape[1]
    s = torch.eye(c, dtype=torch.float64) if similarity is None else torch.as_tensor(similarity)
    s = s.detach().to(torch.float64).cpu()
    if s.shape != (c, c):
        raise ValueError(f"similarity must be {c} x {c}, got {tuple(s.shape)}")
    return (p @ (1 - s)).argmin(dim=1)


def _nearest_value(expected: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return (values[None, :] - expected[:, None]).abs().argmin(dim=1)


def _rank_order(values: torch.Tensor | None, c: int) -> torch.Tensor:
    return torch.arange(c) if values is None else torch.argsort(values, stable=True)


def _median(p: torch.Tensor, values: torch.Tensor | None, threshold: float) -> torch.Tensor:
    order = _rank_order(values, p.shape[1])
    tail = p[:, order].flip(1).cumsum(dim=1).flip(1)  # P(y >= k) in rank order, summed from the top
    return order[(tail[:, 1:] > threshold).sum(dim=1)]


def _median_cumulative(p: torch.Tensor, values: torch.Tensor | None, threshold: float) -> torch.Tensor:
    c = p.shape[1] + 1
    if values is not None and values.shape != (c,):
        raise ValueError(f"cumulative outputs (N, {values.numel() - 1}) expected, got {tuple(p.shape)}")
    return _rank_order(values, c)[(p > threshold).sum(dim=1)]


def decision_table(
    probs: torch.Tensor,
    targets: torch.Tensor,
    similarity: torch.Tensor,
    scale: OrdinalScale | None = None,
    groups: Sequence[int] | None = None,
    *,
    argmax_pred: torch.Tensor | None = None,
    threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """One row per applicable rule: {"rule", headline metrics of its predictions}."""
    values, period = (None, None) if scale is None else (scale.values, scale.period)
    rows = []
    for rule in applicable_rules(values, period):
        if rule == "argmax" and argmax_pred is not None:
            pred = argmax_pred
        else:
            pred = decide(probs, rule, similarity, values, threshold)
        rows.append({"rule": rule, **_headline(targets, pred, similarity, scale, groups)})
    return rows


def _headline(
    targets: torch.Tensor,
    pred: torch.Tensor,
    similarity: torch.Tensor,
    scale: OrdinalScale | None,
    groups: Sequence[int] | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"accuracy": mean_or_none(pred == targets)}
    row.update(similarity_metrics(targets, pred, similarity))
    if scale is not None:
        row["mean_class_distance"] = mean_or_none(scale.distance(targets, pred))
        confusion = confusion_matrix(targets, pred, similarity.shape[0])
        row["amae"] = mean_absolute_errors(confusion, scale.distance_matrix())[0]
    if groups is not None:
        row["group_accuracy"] = group_accuracy(targets, pred, list(groups))
    return row
