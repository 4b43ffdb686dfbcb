"""Focal loss: cross-entropy that down-weights the samples the model already gets right.

Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, in its softmax form:

    loss = -alpha_y (1 - p_y) ** gamma log p_y,   p = softmax(z)

gamma in [0, 10] (default 2; 0 is cross-entropy), alpha an optional weight: one number in (0, 1] for
every class (the paper's scalar alpha, as in kornia's focal_loss) or one weight in [0, 1] per class
(class balancing); without it alpha = 1. Computed in log space, exactly: log p_y = log_softmax(z)_y and
log(1 - p_y) = logsumexp of the other logits - logsumexp of all, so (1 - p_y) ** gamma =
exp(gamma log(1 - p_y)) has no log(0) even where p_y rounds to 1 (logits of +-1e4: finite loss and
gradient); the gradient is autograd's.

    loss = FocalLoss(num_classes=10, gamma=2.0)
    loss = FocalLoss(num_classes=3, gamma=1.0, alpha=torch.tensor([0.25, 0.5, 1.0]))
"""

from __future__ import annotations

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range

__all__ = ["FocalLoss"]


class FocalLoss(ClassificationLoss):
    """-alpha_y (1 - p_y) ** gamma log p_y; buffer `class_weights` (C,) = alpha per class."""

    class_weights: torch.Tensor

    def __init__(
        self, num_classes: int, gamma: float = 2.0, alpha: float | torch.Tensor | None = None
    ) -> None:
        super().__init__(num_classes)
        self.gamma = check_range("loss.gamma", gamma, 0.0, 10.0)
        if alpha is None:
            weights = torch.ones(num_classes, dtype=torch.float64)
        elif isinstance(alpha, torch.Tensor):
            weights = alpha.detach().to("cpu", torch.float64).flatten()
            if weights.numel() != num_classes or not ((weights >= 0) & (weights <= 1)).all():
                raise SpecError("loss.alpha", f"needs {num_classes} class weights in [0, 1]")
        else:
            weights = torch.full((num_classes,), check_range("loss.alpha", alpha, 0.0, 1.0, lo_open=True))
        self.register_buffer("class_weights", weights.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        y = targets[:, None]
        lse = torch.logsumexp(logits, dim=1)
        log_p = logits.gather(1, y).squeeze(1) - lse
        others = torch.logsumexp(logits.scatter(1, y, float("-inf")), dim=1)
        modulation = torch.exp(self.gamma * (others - lse).clamp(max=0.0))  # (1 - p_y) ** gamma
        alpha = self.class_weights.index_select(0, targets).to(logits.dtype)
        return -(alpha * modulation * log_p)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, gamma={self.gamma}"
