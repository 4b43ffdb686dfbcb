"""Class distance weighted cross-entropy (CDW-CE) for ordered classes.

Polat et al., "Class Distance Weighted Cross-Entropy Loss for Ulcerative Colitis Severity Estimation",
MIUA 2022 (dlordinal's `CDWCELoss`):

    loss = -sum_{c} |r_c - r_y| ** alpha * log(1 - p_c),   p = softmax(z)

with r_c the position of class c in value order (class order by default, or the order of an ordinal
similarity spec's `values`; only the order counts, as in emd). Every wrong class is pushed down, the
farther from the truth the harder; the truth itself has weight 0 (nothing pulls p_y up directly; it
rises as the others fall). alpha in (0, 10] (dlordinal's default 0.5; the paper reports larger values
such as 5 working best). Computed exactly (log(1 - p_c) for every class, the top one included, with no
log(0) and no 1e-8 floor, finite for logits of +-1e4) by the pairwise loss's autograd function without
its cross-entropy term (`core.losses.pairwise`).

    loss = CDWCELoss(num_classes=5, alpha=1.0)
    loss = CDWCELoss(num_classes=4, order=torch.tensor([2, 0, 1, 3]))
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_range
from core.losses.order import rank_distance
from core.losses.pairwise import pairwise

__all__ = ["CDWCELoss"]


class CDWCELoss(ClassificationLoss):
    """-sum_c |r_c - r_y| ** alpha log(1 - p_c); buffer `cost` = |r_i - r_j| ** alpha (0 on the diagonal)."""

    cost: torch.Tensor

    def __init__(self, num_classes: int, alpha: float = 0.5, order: torch.Tensor | None = None) -> None:
        super().__init__(num_classes)
        self.alpha = check_range("loss.alpha", alpha, 0.0, 10.0, lo_open=True)
        cost = rank_distance(num_classes, order).pow(self.alpha)
        self.register_buffer("cost", cost.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return pairwise(logits, targets, self.cost, cross_entropy=False)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return pairwise(logits, targets, self.cost, mean=True, cross_entropy=False)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}"
