"""Plain cross-entropy, the baseline every other loss is compared with.

    loss = CrossEntropyLoss(num_classes=10, label_smoothing=0.1)
    loss(logits, targets)   # mean over the batch

Formula: -log p_y with p = softmax(logits); with label smoothing eps the target is
(1 - eps) * onehot(y) + eps / C (Szegedy et al., "Rethinking the Inception Architecture", 2016).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.losses.base import ClassificationLoss, check_range

__all__ = ["CrossEntropyLoss"]


class CrossEntropyLoss(ClassificationLoss):
    """-log softmax(z)_y, optionally label-smoothed; `label_smoothing` in [0, 1)."""

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes)
        self.label_smoothing = check_range("loss.label_smoothing", label_smoothing, 0.0, 1.0, hi_open=True)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, reduction="none", label_smoothing=self.label_smoothing)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean inside the fused kernel, as a hand-written loop gets it (one op fewer each way)."""
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)

    def target_distribution(self) -> torch.Tensor:
        """(1 - eps) onehot(y) + eps / C per row: the label-smoothed target (one-hot without smoothing)."""
        c, eps = self.num_classes, self.label_smoothing
        return (1.0 - eps) * torch.eye(c, dtype=torch.float64) + eps / c

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, label_smoothing={self.label_smoothing}"
