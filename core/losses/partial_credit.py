"""Partial credit: a wrong top prediction that is similar to the truth counts as partly correct.

With s = S[y, j] for the model's top prediction j = argmax z:

    loss = (CE(y) + s * CE(j)) / (1 + s)   if j != y and s >= min_similarity and s > 0
    loss = CE(y)                            otherwise

where CE(k) = -log p_k. The target becomes the mixture (onehot(y) + s onehot(j)) / (1 + s): the true
class always keeps full weight and the predicted class gets s times as much, so with s = 0.5 the
mistake is "half-correct" (half the credit of the truth), with s = 1 it is as good as the truth, and
with s = 0 it is plain cross-entropy. The choice of j is an argmax and no gradient flows through it
(it is piecewise constant); gradients flow only through the log-probabilities.
Source: this project's formulation of partial credit for near misses (graded relevance).

Computed by a custom autograd function from one softmax and one argmax. As j is the top class,
p_j >= 1/C never underflows and CE(y) = (z_j - z_y) - log p_j, so

    loss = -log p_j + (z_j - z_y) / (1 + s),   d loss / d z = p - (onehot(y) + s onehot(j)) / (1 + s)

(two non-negative terms: no cancellation, finite for logits of +-1e4); the batch mean is folded in,
and nothing reads a value back to the host.

    loss = PartialCreditLoss(similarity, min_similarity=0.3)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.losses.base import (
    ClassificationLoss,
    check_range,
    check_similarity,
    reduce_output,
    upstream_gradient,
)

__all__ = ["PartialCreditLoss"]


class _PartialCredit(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        similarity: torch.Tensor,
        targets: torch.Tensor,
        min_similarity: float,
        mean: bool,
    ) -> torch.Tensor:
        c = logits.shape[1]
        p = torch.softmax(logits, dim=1)
        pred = logits.argmax(dim=1, keepdim=True)
        t = targets[:, None]
        s = similarity.reshape(-1).index_select(0, (t * c + pred).squeeze(1)).to(logits.dtype)
        credit = (pred.squeeze(1) != targets) & (s >= min_similarity) & (s > 0)
        s = torch.where(credit, s, torch.zeros_like(s))
        gap = logits.gather(1, pred).sub_(logits.gather(1, t)).squeeze(1)  # z_j - z_y >= 0
        loss = gap.div_(1.0 + s).sub_(torch.log(p.gather(1, pred).squeeze(1)))
        ctx.save_for_backward(p, pred, t, s)
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p, pred, t, s = ctx.saved_tensors
        g, column = upstream_gradient(ctx, grad, p.shape[0])
        out = p * column
        share = g / (1.0 + s)  # (N,): the weight of the truth; s times it goes to the prediction
        out.scatter_add_(1, t, -share[:, None])
        out.scatter_add_(1, pred, (-share * s)[:, None])
        return out, None, None, None, None


def partial_credit(
    logits: torch.Tensor,
    targets: torch.Tensor,
    similarity: torch.Tensor,
    min_similarity: float = 0.0,
    *,
    mean: bool = False,
) -> torch.Tensor:
    """Partial-credit loss of `logits` (N, C) for integer `targets` (N,) under `similarity` (C, C): per
    sample (N,), or the batch mean with `mean=True`."""
    return _PartialCredit.apply(logits, similarity, targets, min_similarity, mean)


class PartialCreditLoss(ClassificationLoss):
    """(CE(y) + s CE(argmax)) / (1 + s) for similar wrong predictions; `min_similarity` in [0, 1]."""

    similarity: torch.Tensor

    def __init__(self, similarity: torch.Tensor, min_similarity: float = 0.0) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        self.min_similarity = check_range("loss.min_similarity", min_similarity, 0.0, 1.0)
        self.register_buffer("similarity", s)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return partial_credit(logits, targets, self.similarity, self.min_similarity)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return partial_credit(logits, targets, self.similarity, self.min_similarity, mean=True)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, min_similarity={self.min_similarity}"
