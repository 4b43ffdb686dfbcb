"""CORAL loss for an ordinal head with C - 1 outputs (`model.head: "coral"`), and the base of the losses
that take such outputs.

Cao, Mirjalili and Raschka, "Rank consistent ordinal regression for neural networks with application to
age estimation", Pattern Recognition Letters 140, 2020 (coral-pytorch's `coral_loss`):

    loss = -sum_{k=0}^{C-2} [ l_k log sigmoid(z_k) + (1 - l_k) log sigmoid(-z_k) ],   l_k = 1[y > k]

the sum of C - 1 binary cross-entropies "is the class above rank k?", averaged over the batch (coral-pytorch
with `importance_weights=None`, `reduction="mean"`; its `log sigmoid(z) - z` is log sigmoid(-z)). The
ranks are the class order: the job validation asks for an ordinal similarity spec whose values rise with
it, or none (core/decision_spec.py). Computed by `binary_cross_entropy_with_logits` (exact and finite for
logits of +-1e4, gradient sigmoid(z) - l). The per-class probabilities of the head are in
core/models/heads.py.

    loss = CoralLoss(num_classes=5)
    loss(outputs (N, 4), targets (N,))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.losses.base import ClassificationLoss

__all__ = ["CoralLoss", "CumulativeLoss", "rank_levels"]


def rank_levels(targets: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, C - 1) 1[y > k] for k = 0..C-2 (coral-pytorch's `levels_from_labelbatch`)."""
    ranks = torch.arange(num_classes - 1, device=targets.device)
    return (targets[:, None] > ranks).to(dtype)


class CumulativeLoss(ClassificationLoss):
    """Base of the ordinal-head losses: `loss(outputs (N, C - 1), targets (N,) int)` -> the batch loss."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        k = self.num_classes - 1
        if logits.dim() != 2 or logits.shape[1] != k:
            raise ValueError(f"an ordinal head's outputs must be (N, {k}), got {tuple(logits.shape)}")
        if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
            raise ValueError(f"targets must be (N,) = ({logits.shape[0]},), got {tuple(targets.shape)}")
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise ValueError(f"targets must be integer class indices, got {targets.dtype}")
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        return self.batch_mean(logits, targets.long())


class CoralLoss(CumulativeLoss):
    """sum_k BCE(z_k, 1[y > k]) per sample, its batch mean the loss."""

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        levels = rank_levels(targets, self.num_classes, logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, levels, reduction="none").sum(dim=1)
