"""Expected cost (Bayes risk) under a cost matrix 1 - S.

    loss = sum_j (1 - S[y, j]) * p_j,   p = softmax(z)

the expected cost of a prediction drawn from p when mistaking y for j costs 1 - S[y, j]; in [0, 1].
With S = I it is 1 - p_y. Source: cost-sensitive learning / minimum Bayes risk training (e.g. Elkan,
"The Foundations of Cost-Sensitive Learning", IJCAI 2001), made differentiable by using p itself.

    loss = ExpectedCostLoss(similarity)
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_similarity

__all__ = ["ExpectedCostLoss"]


class ExpectedCostLoss(ClassificationLoss):
    """sum_j (1 - S[y, j]) p_j; buffer `cost` = 1 - S."""

    cost: torch.Tensor

    def __init__(self, similarity: torch.Tensor) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        self.register_buffer("cost", 1.0 - s)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        cost = self.cost.index_select(0, targets).to(logits.dtype)
        return (cost * torch.softmax(logits, dim=1)).sum(dim=1)
