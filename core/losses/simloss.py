"""SimLoss: cross-entropy that gives credit for probability put on classes similar to the truth.

Kobs et al., "SimLoss: Class Similarities in Cross Entropy", ISMIS 2020:

    loss = -log( sum_c S[y, c] * p_c ),   p = softmax(z)
    d loss / d z = p - r,   r_c = S[y, c] p_c / sum_k S[y, k] p_k

Exact and finite however small the probabilities get (logits of +-1e4) and wherever S is 0: rows
whose sum_c S[y, c] p_c would underflow (below sqrt of the dtype's smallest normal number) are
computed in log space instead, loss = logsumexp(z) - logsumexp(z + log S[y]) with log 0 = -inf
contributing nothing, and r = softmax(z + log S[y]). Every other row uses the direct sum, which is
then exact to rounding; a custom autograd function reuses the softmax and the gathered rows of S so
the loss costs about what cross-entropy does. The paper's lower bound epsilon is not needed. With
S = I it is plain cross-entropy.

    loss = SimLoss(similarity)   # similarity: C x C tensor, diagonal 1, entries in [0, 1]
    loss(logits, targets)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.losses.base import ClassificationLoss, check_similarity

__all__ = ["SimLoss", "simloss"]


class _SimLoss(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, similarity: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        weighted = similarity.index_select(0, targets).mul_(p)  # S[y, c] p_c (a fresh gathered copy)
        total = weighted.sum(dim=1)
        floor = torch.finfo(logits.dtype).tiny ** 0.5
        small = total < floor
        scale = 1.0 / total
        loss = -torch.log(total)
        if bool(small.any()):
            rows = small.nonzero().squeeze(1)
            z = logits.index_select(0, rows)
            shifted = z + torch.log(similarity.index_select(0, targets.index_select(0, rows)))
            loss[rows] = torch.logsumexp(z, dim=1) - torch.logsumexp(shifted, dim=1)
            weighted[rows] = torch.softmax(shifted, dim=1)
            scale[rows] = 1.0
        ctx.save_for_backward(p, weighted, scale)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        p, weighted, scale = ctx.saved_tensors
        out = p * grad[:, None]
        out.addcmul_(weighted, (-grad * scale)[:, None])
        return out, None, None


def simloss(logits: torch.Tensor, targets: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
    """Per-sample SimLoss (N,) of `logits` (N, C) for integer `targets` (N,) under `similarity` (C, C)."""
    return _SimLoss.apply(logits, similarity.to(logits.dtype), targets)


class SimLoss(ClassificationLoss):
    """-log(sum_c S[y, c] p_c), exact in log space where needed; buffer `similarity` = S."""

    similarity: torch.Tensor

    def __init__(self, similarity: torch.Tensor) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        self.register_buffer("similarity", s)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return simloss(logits, targets, self.similarity)
