"""Expected-value loss for ordered classes: squared error between the predicted mean and the truth.

Linear classes with values v (default 0..C-1, or an ordinal similarity spec's `values`):

    loss = 0.5 * ((sum_j v_j p_j - v_y) / r) ** 2,   p = softmax(z)

with r = max(v) - min(v) when `scale` (default; the loss then lies in [0, 0.5]) else r = 1.
Cyclic classes (months, hours, compass; period P) use the circular version: class j sits at the
unit vector u_j = (cos 2 pi v_j / P, sin 2 pi v_j / P), E = sum_j p_j u_j is the expected vector and

    loss = 0.5 * |E - u_y| ** 2   (in [0, 2]; equals 1 - cos(angle between u_y and u_E) when |E| = 1)

so 12 o'clock predicted for 1 o'clock is a small error, not a large one. `scale` has no effect there.
It constrains only the mean of p, so on its own the argmax of p need not be the right class (read the
prediction as the class nearest E[v], or combine it with cross-entropy, e.g. 0.7 CE + 0.3 this).
Source: mean-value regression on softmax outputs (e.g. Pan et al., "Mean-Variance Loss for Deep Age
Estimation", CVPR 2018; Rothe et al., DEX, 2015); circular form after directional statistics.

    loss = ExpectedValueLoss(values=torch.arange(10.0))
    loss = ExpectedValueLoss(values=torch.tensor([0., 90., 180., 270.]), period=360.0)
"""

from __future__ import annotations

import math

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range

__all__ = ["ExpectedValueLoss"]


class ExpectedValueLoss(ClassificationLoss):
    """0.5 (E[v] - v_y)^2 / range^2, or 0.5 |E[u] - u_y|^2 on the circle when `period` is given."""

    bounded = True  # no log-likelihood term: alone it trains slowly (ClassificationLoss.bounded)

    points: torch.Tensor

    def __init__(self, values: torch.Tensor, period: float | None = None, scale: bool = True) -> None:
        v = torch.as_tensor(values, dtype=torch.float64).flatten()
        super().__init__(v.numel())
        if not torch.isfinite(v).all():
            raise SpecError("similarity.values", "class values must be finite")
        self.scale = bool(scale)
        self.period = None if period is None else check_range("similarity.period", period, 0.0, lo_open=True)
        if self.period is not None:
            angle = 2.0 * math.pi * v / self.period
            points = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        else:
            span = float(v.max() - v.min())
            points = (v - v.min()) / span if (self.scale and span > 0) else v
            points = points[:, None]
        self.register_buffer("points", points.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        points = self.points.to(logits.dtype)
        expected = torch.softmax(logits, dim=1) @ points
        return 0.5 * (expected - points.index_select(0, targets)).square().sum(dim=1)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, period={self.period}, scale={self.scale}"
