"""SLACE (soft labels accumulating cross-entropy) for ordered classes.

Nachmani et al., "SLACE: A Monotone and Balance-Sensitive Loss Function for Ordinal Regression", AAAI
2025 (dlordinal's `SLACELoss`). With r the classes' positions in value order (only the order counts, as
in emd), d_c = |r_c - r_y| the distance of class c from the truth:

    loss = -sum_c m_c log A_c,   m = softmax(-alpha d)   (the soft target),
    A_c = sum_{j : d_j <= d_c} p_j                          (the mass at least as close to y as c)

so the target rewards probability on the truth and, less and less, on the classes around it, and A
accumulates it outward from the truth (A = 1 for the farthest classes). alpha in (0, 100] (default 1):
larger is sharper.

Computed exactly (dlordinal adds 1e-9 inside the log, which saturates once A falls below about 1e-9):
per truth y the classes are sorted by distance (a buffer) and the logits x gathered in that order; the
running sums s_k of their exponentials give log A at the last class of each distance group as
log s_k - log s_end. The loss is sum_k w_k (log s_end - log s_k) with w = M[y] the target mass of each
distance group put on the group's last position (0 elsewhere): non-negative terms. A custom autograd
function (batch mean folded in) returns the closed-form gradient, W = sum_k w_k,

    d loss / d x_j = e^{x_j} (W / s_end - sum_{k >= j} w_k / s_k)

gathered back to class order. Two algorithms, as for simloss and soft_labels: "direct" (the default on
CPU) takes s as a cumulative sum of exp(x - max x) (sums of positive terms, exact to rounding; the
loss as W log s_end - sum_k w_k log s_k), recomputing in log space the rare rows whose first sum,
exp(z_y - max z), is below the square root of the dtype's smallest normal number (one check of the
batch on the host); "log_space" (the default elsewhere) takes log s = logcumsumexp(x) for every row and the reverse sums as a reversed
logcumsumexp of log w_k - log s_k, with no host synchronisation (several times slower on a CPU). Both
are finite for logits of +-1e4 (memory O(N * C)).

    loss = SLACELoss(num_classes=5, alpha=1.0)
    loss = SLACELoss(num_classes=5, alpha=1.0, algorithm="log_space")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.losses.base import ClassificationLoss, check_range, reduce_output, upstream_gradient
from core.losses.order import rank_distance
from core.losses.soft_labels import ALGORITHMS

__all__ = ["SLACELoss", "slace"]


class _Direct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, table: _Table, mean: bool) -> torch.Tensor:
        x = logits.gather(1, table.index)  # the truth first
        e = x.sub_(x.amax(dim=1, keepdim=True)).exp_()
        s = torch.cumsum(e, dim=1)
        small = s[:, 0] < torch.finfo(x.dtype).tiny ** 0.5
        rows = small.nonzero().squeeze(1) if bool(small.any()) else None
        if rows is not None:
            s.index_fill_(0, rows, 1.0)  # no 1 / 0 below; these rows are recomputed in log space
        total = table.weights.sum(dim=1)  # W
        loss = torch.log(s[:, -1]).mul_(total).sub_(torch.log(s).mul_(table.weights).sum(dim=1))
        saved = [e, s, total]
        if rows is not None:
            x_rows = logits.index_select(0, rows).gather(1, table.index.index_select(0, rows))
            w_rows = table.weights.index_select(0, rows)
            c_rows = torch.logcumsumexp(x_rows, dim=1)
            loss.index_copy_(0, rows, _log_loss(c_rows, w_rows))
            saved += [rows, x_rows, c_rows, w_rows]
        ctx.save_for_backward(*saved)
        ctx.table = table
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        e, s, total, *fallback = ctx.saved_tensors
        _, column = upstream_gradient(ctx, grad, e.shape[0])
        # e_j (W / s_end - sum_{k >= j} w_k / s_k), all relative to exp(max x)
        tail = torch.div(ctx.table.weights, s).flip(1).cumsum(dim=1).flip(1)
        out = torch.sub(total[:, None] / s[:, -1:], tail).mul_(e)
        if fallback:
            rows, x_rows, c_rows, w_rows = fallback
            out.index_copy_(0, rows, _log_gradient(x_rows, c_rows, w_rows))
        return ctx.table.to_classes(out.mul_(column)), None, None


class _LogSpace(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, table: _Table, mean: bool) -> torch.Tensor:
        x = logits.gather(1, table.index)
        c = torch.logcumsumexp(x, dim=1)  # log s
        ctx.save_for_backward(x, c)
        ctx.table = table
        return reduce_output(ctx, _log_loss(c, table.weights), mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, c = ctx.saved_tensors
        _, column = upstream_gradient(ctx, grad, x.shape[0])
        out = _log_gradient(x, c, ctx.table.weights).mul_(column)
        return ctx.table.to_classes(out), None, None


@dataclass(frozen=True)
class _Table:
    """The rows of a batch: `index` (N, C) the classes nearest first, `weights` (N, C) w in that order;
    `position` (C, C) and `targets` (N,) give each class's place in its row (for the way back)."""

    index: torch.Tensor
    weights: torch.Tensor
    position: torch.Tensor
    targets: torch.Tensor

    def to_classes(self, ordered: torch.Tensor) -> torch.Tensor:
        """Rows in distance order back to class order (a gather: cheaper than scattering)."""
        return ordered.gather(1, self.position.index_select(0, self.targets))


def _log_loss(c: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_k w_k (log s_end - log s_k) from c = log s (N, C)."""
    return (c[:, -1:] - c).mul_(weights).sum(dim=1)


def _log_gradient(x: torch.Tensor, c: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """d loss / d x in log space: W e^{x_j - log s_end} - e^{x_j + log sum_{k >= j} w_k / s_k} (each term
    at most 1: no overflow however small s gets)."""
    tail = torch.logcumsumexp((torch.log(weights) - c).flip(1), dim=1).flip(1)
    head = torch.exp(x - c[:, -1:]).mul_(weights.sum(dim=1, keepdim=True))
    return head.sub_(torch.exp(tail.add_(x)))


def slace(
    logits: torch.Tensor,
    targets: torch.Tensor,
    by_distance: torch.Tensor,
    group_mass: torch.Tensor,
    *,
    position: torch.Tensor | None = None,
    mean: bool = False,
    algorithm: str = "auto",
) -> torch.Tensor:
    """sum_k w_k (log s_end - log s_k), s the running sums of exp(logits) of each row in the order
    `by_distance[y]` (C, C: a permutation per truth) and w = `group_mass[y]` (C, C) in that order: per
    sample (N,), or the batch mean with `mean=True`. `position`: argsort(by_distance, dim=1), each
    class's place in its row (computed here when not given). `algorithm`: "auto" (direct on CPU,
    log_space elsewhere), "direct", "log_space"."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    log_space = algorithm == "log_space" or (algorithm == "auto" and logits.device.type != "cpu")
    table = _Table(
        index=by_distance.index_select(0, targets),
        weights=group_mass.to(logits.dtype).index_select(0, targets),
        position=torch.argsort(by_distance, dim=1) if position is None else position,
        targets=targets,
    )
    return (_LogSpace if log_space else _Direct).apply(logits, table, mean)


class SLACELoss(ClassificationLoss):
    """-sum_c softmax(-alpha d)_c log(mass within distance d_c of y); buffers `by_distance`, `group_mass`."""

    by_distance: torch.Tensor
    group_mass: torch.Tensor
    position: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        alpha: float = 1.0,
        order: torch.Tensor | None = None,
        algorithm: str = "auto",
    ) -> None:
        super().__init__(num_classes)
        self.alpha = check_range("loss.alpha", alpha, 0.0, 100.0, lo_open=True)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self.algorithm = algorithm
        d = rank_distance(num_classes, order)  # (C, C): row y, distance of each class from y
        by_distance = torch.argsort(d, dim=1, stable=True)  # classes of row y, nearest first
        sorted_d = d.gather(1, by_distance)
        mass = torch.softmax(-self.alpha * sorted_d, dim=1)  # the target, in that order
        last = torch.ones_like(sorted_d, dtype=torch.bool)  # the last position of each distance group
        last[:, :-1] = sorted_d[:, 1:] != sorted_d[:, :-1]
        group = torch.cumsum(last.flip(1), dim=1).flip(1) - 1  # group number, counted from the end
        totals = torch.zeros_like(mass).scatter_add_(1, group, mass)  # each group's target mass
        group_mass = torch.where(last, totals.gather(1, group), torch.zeros_like(mass))
        self.register_buffer("by_distance", by_distance)
        self.register_buffer("group_mass", group_mass.to(torch.float32))
        self.register_buffer("position", torch.argsort(by_distance, dim=1), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._derive_position())
        self._soft_target = torch.zeros_like(mass).scatter_(1, by_distance, mass)  # m in class order

    def _derive_position(self) -> None:
        self.position = torch.argsort(self.by_distance, dim=1)  # each class's place in its row

    def target_weights(self) -> torch.Tensor:
        """m = softmax(-alpha d) per truth, in class order: the weight of each class's log A term (the
        loss itself is minimised by the one-hot label, where every A is 1)."""
        return self._soft_target.clone()

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, mean: bool) -> torch.Tensor:
        return slace(
            logits,
            targets,
            self.by_distance,
            self.group_mass,
            position=self.position,
            mean=mean,
            algorithm=self.algorithm,
        )

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=False)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=True)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}, algorithm={self.algorithm!r}"
