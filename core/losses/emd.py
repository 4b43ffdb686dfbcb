"""Squared earth mover's distance between the predicted and the true class distribution (ordinal).

Hou et al., "Squared Earth Mover's Distance-based Loss for Training Deep Neural Networks", 2016:

    loss = sum_{k=0}^{C-2} (CDF_p(k) - CDF_y(k)) ** 2,   CDF_p(k) = sum_{j <= k} p_j,  CDF_y(k) = [k >= y]

with classes in increasing order of their values (class order by default; unit spacing between
neighbours). The last term (k = C-1) is always 0 and left out; `mean_over_classes` divides by C - 1
so the loss lies in [0, 1] whatever C. Linear order only (a cycle has no CDF).

Computed by a custom autograd function (batch mean and the 1 / (C - 1) folded in, no host reads):
p = softmax of the logits in value order (no reordering when the order is the class order), the
differences d = CDF_p - CDF_y as one cumulative sum of p - onehot(y) (the one-hot subtracted in place
and p's entry restored exactly afterwards), loss = sum_k d_k ** 2 (a squared vector norm). The
gradient is a softmax backward of dL/dp_m = 2 sum_{k >= m} d_k; as a softmax backward ignores a
constant added to every entry, it uses -2 sum_{k < m} d_k instead, a forward cumulative sum of d (no
reversal, no flip copies):

    d loss / d z_m = p_m (G_m - sum_j p_j G_j),   G_m = -2 sum_{k < m} d_k

    loss = EMDLoss(num_classes=10)
    loss = EMDLoss(num_classes=4, order=torch.tensor([2, 0, 1, 3]), mean_over_classes=True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.errors import SpecError
from core.losses.base import ClassificationLoss, reduce_output

__all__ = ["EMDLoss", "squared_emd"]


class _SquaredEMD(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, rank: torch.Tensor, scale: float, mean: bool) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)  # in value order
        r = rank[:, None]  # (N, 1): the truth's position in value order
        p_r = p.gather(1, r)
        p.scatter_add_(1, r, torch.full_like(p_r, -1.0))
        d = torch.cumsum(p[:, :-1], dim=1)  # CDF_p(k) - [k >= rank], k < C - 1
        p.scatter_(1, r, p_r)  # p exactly again
        loss = torch.linalg.vector_norm(d, dim=1).square_()
        if scale != 1.0:
            loss = loss.mul_(scale)
        ctx.save_for_backward(p, d)
        ctx.scale = scale
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p, d = ctx.saved_tensors
        g = grad * (-2.0 * ctx.scale / p.shape[0] if ctx.mean else -2.0 * ctx.scale)  # 0-d or (N,)
        if not ctx.mean:
            g = g[:, None]
        out = torch.empty_like(p)
        out[:, :1] = 0.0
        torch.cumsum(d, dim=1, out=out[:, 1:])  # B_m = sum_{k < m} d_k (B_0 = 0)
        # G_m = -2 s B_m: out = p (G - sum_j p_j G_j) = (-2 s) (p B - (sum_j p_j B_j) p)
        dot = out.mul_(p).sum(dim=1, keepdim=True)
        return out.addcmul_(p, dot, value=-1.0).mul_(g), None, None, None


def squared_emd(
    logits: torch.Tensor, rank: torch.Tensor, *, scale: float = 1.0, mean: bool = False
) -> torch.Tensor:
    """scale * sum_k (CDF_p(k) - [k >= rank]) ** 2 for `logits` (N, C) already in value order and the
    truth's position `rank` (N,): per sample (N,), or the batch mean with `mean=True`."""
    return _SquaredEMD.apply(logits, rank, scale, mean)


class EMDLoss(ClassificationLoss):
    """Squared EMD of CDFs; `order` lists the class indices from the lowest to the highest value."""

    bounded = True  # no log-likelihood term: alone it trains slowly (ClassificationLoss.bounded)

    order: torch.Tensor
    rank: torch.Tensor

    def __init__(
        self, num_classes: int, order: torch.Tensor | None = None, mean_over_classes: bool = False
    ) -> None:
        super().__init__(num_classes)
        order = torch.arange(num_classes) if order is None else torch.as_tensor(order, dtype=torch.long)
        if sorted(order.tolist()) != list(range(num_classes)):
            raise SpecError("similarity.values", "order must be a permutation of the class indices")
        self.mean_over_classes = bool(mean_over_classes)
        self.identity_order = bool(torch.equal(order, torch.arange(num_classes)))  # no reordering needed
        self.register_buffer("order", order.clone())
        self.register_buffer("rank", torch.argsort(order))

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, mean: bool) -> torch.Tensor:
        scale = 1.0 / (self.num_classes - 1) if self.mean_over_classes else 1.0
        if self.identity_order:
            return squared_emd(logits, targets, scale=scale, mean=mean)
        ordered = logits.index_select(1, self.order)
        return squared_emd(ordered, self.rank.index_select(0, targets), scale=scale, mean=mean)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=False)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=True)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, mean_over_classes={self.mean_over_classes}"
