"""Weighted kappa loss for ordered classes: one minus Cohen's weighted kappa of the batch, made soft.

de la Torre et al., "Weighted kappa loss function for multi-class classification of ordinal data in deep
learning", Pattern Recognition Letters 2018, in the [0, 2] form of Vargas et al. 2020 (dlordinal's
`WKLoss`, its default `use_logarithm=False`). Over a batch of N samples with p_k = softmax(z_k) and
one-hot truths t_k:

    loss = sum_{i, j} w_ij O_ij / (sum_{i, j} w_ij E_ij + eps)
    O_ij = sum_k p_ki t_kj                   (the soft confusion matrix)
    E_ij = (sum_k p_ki) (sum_k t_kj) / N      (its expectation were predictions independent of the truth)
    w_ij = |r_i - r_j| / (C - 1)  ("linear")  or  (r_i - r_j)^2 / (C - 1)^2  ("quadratic", the default)

with r the classes' positions in value order (only the order counts, as in emd) and eps = 1e-10
(dlordinal's, so that a batch whose truths and predictions are all one class gives 0, not 0 / 0). It is
1 - kappa: 0 for perfect agreement, 1 for chance, up to 2 for systematic disagreement.

It is a property of the whole batch, not a mean over samples: `per_sample` returns each sample's share
N * sum_i p_ki w_{i, y_k} / (sum_{ij} w_ij E_ij + eps), whose mean is the loss (so it combines with other
losses and differentiates exactly), but a share means nothing alone and the loss of one sample is 1
whatever it predicts (batches of a few samples train poorly). Costs O(N * C) (the numerator is an
expected cost, the denominator two class histograms).

    loss = WeightedKappaLoss(num_classes=5, weighting="quadratic")
"""

from __future__ import annotations

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss
from core.losses.order import rank_distance

__all__ = ["EPSILON", "WeightedKappaLoss"]

EPSILON = 1e-10
WEIGHTINGS = ("linear", "quadratic")


class WeightedKappaLoss(ClassificationLoss):
    """Soft weighted kappa loss of the batch; buffer `weights` = w (C, C), 0 on the diagonal."""

    bounded = True  # no log-likelihood term: alone it trains slowly (ClassificationLoss.bounded)

    weights: torch.Tensor

    def __init__(
        self, num_classes: int, weighting: str = "quadratic", order: torch.Tensor | None = None
    ) -> None:
        super().__init__(num_classes)
        if weighting not in WEIGHTINGS:
            raise SpecError("loss.weighting", f"must be 'linear' or 'quadratic', got {weighting!r}")
        self.weighting = weighting
        w = rank_distance(num_classes, order) / (num_classes - 1)
        self.register_buffer("weights", (w if weighting == "linear" else w.square()).to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = logits.shape[0]
        w = self.weights.to(logits.dtype)
        p = torch.softmax(logits, dim=1)
        observed = (p * w.index_select(0, targets)).sum(dim=1)  # sum_i p_ki w_{y_k, i}  (w symmetric)
        truth = p.new_zeros(self.num_classes).index_add_(0, targets, p.new_ones(n))  # sum_k t_kj, no sync
        expected = p.sum(dim=0) @ (w @ truth) / n  # sum_ij w_ij (sum_k p_ki)(sum_k t_kj) / N
        return observed * (n / (expected + EPSILON))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, weighting={self.weighting!r}"
