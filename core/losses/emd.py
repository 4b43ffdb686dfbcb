"""Squared earth mover's distance between the predicted and the true class distribution (ordinal).

Hou et al., "Squared Earth Mover's Distance-based Loss for Training Deep Neural Networks", 2016:

    loss = sum_{k=0}^{C-2} (CDF_p(k) - CDF_y(k)) ** 2,   CDF_p(k) = sum_{j <= k} p_j,  CDF_y(k) = [k >= y]

with classes in increasing order of their values (class order by default; unit spacing between
neighbours). The last term (k = C-1) is always 0 and left out; `mean_over_classes` divides by C - 1
so the loss lies in [0, 1] whatever C. Linear order only (a cycle has no CDF).

    loss = EMDLoss(num_classes=10)
    loss = EMDLoss(num_classes=4, order=torch.tensor([2, 0, 1, 3]), mean_over_classes=True)
"""

from __future__ import annotations

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss

__all__ = ["EMDLoss"]


class EMDLoss(ClassificationLoss):
    """Squared EMD of CDFs; `order` lists the class indices from the lowest to the highest value."""

    order: torch.Tensor
    rank: torch.Tensor
    thresholds: torch.Tensor

    def __init__(
        self, num_classes: int, order: torch.Tensor | None = None, mean_over_classes: bool = False
    ) -> None:
        super().__init__(num_classes)
        order = torch.arange(num_classes) if order is None else torch.as_tensor(order, dtype=torch.long)
        if sorted(order.tolist()) != list(range(num_classes)):
            raise SpecError("similarity.values", "order must be a permutation of the class indices")
        self.mean_over_classes = bool(mean_over_classes)
        self.register_buffer("order", order.clone())
        self.register_buffer("rank", torch.argsort(order))
        self.register_buffer("thresholds", torch.arange(num_classes - 1))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits.index_select(1, self.order), dim=1)
        cdf = torch.cumsum(p[:, :-1], dim=1)
        truth = (self.thresholds[None, :] >= self.rank.index_select(0, targets)[:, None]).to(logits.dtype)
        loss = (cdf - truth).square().sum(dim=1)
        return loss / (self.num_classes - 1) if self.mean_over_classes else loss

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, mean_over_classes={self.mean_over_classes}"
