"""Expected cost (Bayes risk) under a cost matrix 1 - S.

    loss = sum_j (1 - S[y, j]) * p_j,   p = softmax(z),   d loss / d z_k = p_k ((1 - S[y, k]) - loss)

the expected cost of a prediction drawn from p when mistaking y for j costs 1 - S[y, j]; in [0, 1].
With S = I it is 1 - p_y. A custom autograd function reuses the softmax and the gathered cost rows, so
it costs about what cross-entropy does. Source: cost-sensitive learning / minimum Bayes risk training
(e.g. Elkan, "The Foundations of Cost-Sensitive Learning", IJCAI 2001), made differentiable by using
p itself.

    loss = ExpectedCostLoss(similarity)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.losses.base import ClassificationLoss, check_similarity, reduce_output, upstream_gradient

__all__ = ["ExpectedCostLoss", "expected_cost"]


class _ExpectedCost(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, cost: torch.Tensor, targets: torch.Tensor, mean: bool
    ) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        weighted = cost.index_select(0, targets).mul_(p)  # cost[y, j] p_j (a fresh gathered copy)
        loss = weighted.sum(dim=1)
        ctx.save_for_backward(p, weighted, loss)
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p, weighted, loss = ctx.saved_tensors
        g, column = upstream_gradient(ctx, grad, p.shape[0])
        out = weighted * column
        out.addcmul_(p, (-g * loss)[:, None])
        return out, None, None, None


def expected_cost(
    logits: torch.Tensor, targets: torch.Tensor, cost: torch.Tensor, *, mean: bool = False
) -> torch.Tensor:
    """sum_j cost[y, j] softmax(logits)_j: per sample (N,), or the batch mean with `mean=True`."""
    return _ExpectedCost.apply(logits, cost.to(logits.dtype), targets, mean)


class ExpectedCostLoss(ClassificationLoss):
    """sum_j (1 - S[y, j]) p_j; buffer `cost` = 1 - S."""

    bounded = True  # no log-likelihood term: alone it trains slowly (ClassificationLoss.bounded)

    cost: torch.Tensor

    def __init__(self, similarity: torch.Tensor) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        self.register_buffer("cost", 1.0 - s)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return expected_cost(logits, targets, self.cost)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return expected_cost(logits, targets, self.cost, mean=True)

    def target_weights(self) -> torch.Tensor:
        """S[y] / sum(S[y]) with S = 1 - cost: the loss is 1 - sum_j S[y, j] p_j, a credit linear in p."""
        s = 1.0 - self.cost.detach().to("cpu", torch.float64)
        return s / s.sum(dim=1, keepdim=True)
