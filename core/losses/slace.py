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
per truth y the classes are sorted by distance (a buffer) and the logits gathered in that order; the
running sums s_k of their exponentials give log A at the last class of each distance group as
log s_k - log s_end. The loss is sum_k M[y, k] (log s_end - log s_k) with M[y] the target mass of each
distance group put on the group's last position (0 elsewhere): non-negative terms. Two algorithms, as
for simloss and soft_labels: "direct" (the default on CPU) takes s as a cumulative sum of exp(x - max x)
(sums of positive terms, exact to rounding), recomputing in log space the rare rows whose first sum,
exp(z_y - max z), is below the square root of the dtype's smallest normal number (one check of the batch
on the host); "log_space" (the default elsewhere) takes log s = logcumsumexp(x) for every row, with no
host synchronisation (several times slower on a CPU). Both are finite for logits of +-1e4; the
gradient is autograd's (memory O(N * C)).

    loss = SLACELoss(num_classes=5, alpha=1.0)
    loss = SLACELoss(num_classes=5, alpha=1.0, algorithm="log_space")
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_range
from core.losses.order import rank_distance
from core.losses.soft_labels import ALGORITHMS

__all__ = ["SLACELoss"]


class SLACELoss(ClassificationLoss):
    """-sum_c softmax(-alpha d)_c log(mass within distance d_c of y); buffers `by_distance`, `group_mass`."""

    by_distance: torch.Tensor
    group_mass: torch.Tensor

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
        self._soft_target = torch.zeros_like(mass).scatter_(1, by_distance, mass)  # m in class order

    def target_weights(self) -> torch.Tensor:
        """m = softmax(-alpha d) per truth, in class order: the weight of each class's log A term (the
        loss itself is minimised by the one-hot label, where every A is 1)."""
        return self._soft_target.clone()

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ordered = logits.gather(1, self.by_distance.index_select(0, targets))  # the truth first
        if self.algorithm == "log_space" or (self.algorithm == "auto" and logits.device.type != "cpu"):
            gap = _log_gaps(ordered)
        else:
            gap = _direct_gaps(ordered)
        weights = self.group_mass.index_select(0, targets).to(logits.dtype)
        return (gap * weights).sum(dim=1)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}, algorithm={self.algorithm!r}"


def _log_gaps(x: torch.Tensor) -> torch.Tensor:
    """log s_end - log s_k (N, C) for s the running sums of exp(x) along each row, in log space."""
    c = torch.logcumsumexp(x, dim=1)
    return c[:, -1:] - c


def _direct_gaps(x: torch.Tensor) -> torch.Tensor:
    """The same from a cumulative sum of exp(x - max x); rows whose first sum underflows the square root
    of the smallest normal number are recomputed in log space."""
    s = torch.cumsum(torch.exp(x - x.detach().amax(dim=1, keepdim=True)), dim=1)
    small = s[:, 0] < torch.finfo(x.dtype).tiny ** 0.5
    if not bool(small.any()):
        return torch.log(s[:, -1:] / s)
    s = torch.where(small[:, None], torch.ones_like(s), s)  # no 1 / 0 in the gradient of replaced rows
    gap = torch.log(s[:, -1:] / s)
    rows = small.nonzero().squeeze(1)
    return gap.index_copy(0, rows, _log_gaps(x.index_select(0, rows)))
