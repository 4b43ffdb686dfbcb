"""Pairwise (one-vs-rest) loss: push every wrong class down, the more the less similar it is.

    loss = -log p_y - sum_{j != y} (1 - S[y, j]) * log(1 - p_j),   p = softmax(z)

a binary cross-entropy "j is not the answer" per wrong class, weighted by its dissimilarity to the
truth (a similar class is pushed down less), plus the usual cross-entropy toward y. Source: this
project's similarity-weighted form of the one-vs-rest binary cross-entropy (as in multi-label
training); with S = I it is CE plus an unweighted one-vs-rest BCE.

Computed by a custom autograd function, exactly for every class (finite loss and gradient with logits
of +-1e4), with one exp and one log1p per entry, the batch mean folded in and no host reads. With t the
top class (argmax, m = z_t) and q = softmax of the logits without t (q_t = 0; its largest entry gives
lse' = logsumexp_{j != t} z_j), delta = lse' - m:

    log(1 - p_t) = logsigmoid(delta),   log p_t = -softplus(delta),   p_j = q_j sigmoid(delta) (j != t)
    log(1 - p_j) = log1p(-p_j) for j != t   (p_j <= 1/2: exact),   -log p_y = m - z_y + softplus(delta)

and with c = 1 - S[y], o_j = p_j / (1 - p_j) for j != t, T = sum_{j != t} c_j o_j:

    d loss / d z_k = q_k ((1 - p_t)(1 - T) - c_t p_t) + c_k o_k - [k = y]    (k != t)
    d loss / d z_t = p_t (1 + c_t - T) - [t = y]

`log1m_softmax(logits)` gives log(1 - softmax(logits)) (N, C) exactly, the same way, as a plain function.
`pairwise(..., cross_entropy=False)` leaves the -log p_y term out (its share p - onehot(y) of the
gradient with it): the class distance weighted cross-entropy of `core.losses.cdw_ce`.

    loss = PairwiseLoss(similarity)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from core.losses.base import ClassificationLoss, check_similarity, reduce_output, upstream_gradient

__all__ = ["PairwiseLoss", "log1m_softmax", "pairwise"]


def _without_top(logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(t, m, q, delta, spare): the top class (N, 1), its logit (N, 1), q = softmax of the logits without
    t (N, C; 0 at t), delta = logsumexp_{j != t} z_j - m (N, 1) and a spare (N, C) buffer."""
    m, t = logits.max(dim=1, keepdim=True)
    spare = logits.scatter(1, t, float("-inf"))
    m2 = spare.amax(dim=1, keepdim=True)  # the second largest logit
    q = torch.softmax(spare, dim=1)
    # q at the second largest logit is exp(m2 - lse') >= 1 / (C - 1): lse' = m2 - log(max q), exactly
    return t, m, q, (m2 - m).sub_(torch.log(q.amax(dim=1, keepdim=True))), spare


def log1m_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(logits)) (N, C), exact for every class, finite for finite logits and C >= 2."""
    t, _, q, delta, _ = _without_top(logits)
    return torch.log1p(-q * torch.sigmoid(delta)).scatter(1, t, F.logsigmoid(delta))


class _Pairwise(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, cost: torch.Tensor, targets: torch.Tensor, mean: bool, ce: bool
    ) -> torch.Tensor:
        t, m, q, delta, spare = _without_top(logits)
        rest_mass = torch.sigmoid(delta)  # 1 - p_t, exact however small
        c = cost.index_select(0, targets)  # 1 - S[y] with c_y = 0 (a fresh gathered copy)
        c_t = c.gather(1, t)
        y = targets[:, None]
        # -log p_y - c_t log(1 - p_t) - sum_{j != t} c_j log1p(-p_j)   (log1p(-p_t) = 0 in the buffer)
        nll = c_t * F.logsigmoid(delta).neg_()
        if ce:
            nll.add_(m - logits.gather(1, y)).add_(F.softplus(delta))
        log1m = torch.mul(q, rest_mass.neg(), out=spare).log1p_()
        loss = nll.squeeze(1).sub_(log1m.mul_(c).sum(dim=1))
        ctx.save_for_backward(q, c, t, y, c_t, rest_mass, torch.sigmoid(-delta))
        ctx.ce = ce
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, c, t, y, c_t, rest_mass, p_t = ctx.saved_tensors
        _, g = upstream_gradient(ctx, grad, q.shape[0])  # 0-d or (N, 1)
        # c_j o_j = c_j p_j / (1 - p_j) = rest_mass * q_j * w_j with w = c / (1 - p)   (0 at t)
        out = torch.mul(q, rest_mass.neg()).add_(1.0)  # 1 - p (1 at t)
        out = torch.div(c, out, out=out).mul_(q)  # q w
        total = out.sum(dim=1, keepdim=True).mul_(rest_mass)  # T = sum_{j != t} c_j o_j
        ce = 1.0 if ctx.ce else 0.0  # the cross-entropy term's share: p - onehot(y)
        weight = rest_mass * (ce - total) - c_t * p_t
        out.mul_(rest_mass * g).addcmul_(q, weight * g)
        out.scatter_add_(1, t, p_t * (ce + c_t - total) * g)
        if ctx.ce:
            out.scatter_add_(1, y, (-g).expand_as(y))
        return out, None, None, None, None


def pairwise(
    logits: torch.Tensor,
    targets: torch.Tensor,
    cost: torch.Tensor,
    *,
    mean: bool = False,
    cross_entropy: bool = True,
) -> torch.Tensor:
    """-log p_y - sum_j cost[y, j] log(1 - p_j) (cost[y, y] must be 0): per sample (N,), or the batch
    mean with `mean=True`; without the -log p_y term when `cross_entropy=False` (CDW-CE)."""
    return _Pairwise.apply(logits, cost.to(logits.dtype), targets, mean, cross_entropy)


class PairwiseLoss(ClassificationLoss):
    """-log p_y - sum_j (1 - S[y, j]) log(1 - p_j); buffer `cost` = 1 - S (zero on the diagonal)."""

    cost: torch.Tensor

    def __init__(self, similarity: torch.Tensor) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        cost = 1.0 - s
        cost.fill_diagonal_(0.0)
        self.register_buffer("cost", cost)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return pairwise(logits, targets, self.cost)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return pairwise(logits, targets, self.cost, mean=True)
