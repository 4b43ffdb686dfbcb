"""CORN loss for an ordinal head with C - 1 outputs (`model.head: "corn"`): conditional training.

Shi, Cao and Raschka, "Deep neural networks for rank-consistent ordinal regression based on conditional
probabilities", Pattern Analysis and Applications 26, 2023 (coral-pytorch's `corn_loss`). Output k is the
logit of P(y > k | y > k - 1) and is trained only on the samples with y > k - 1 (y >= k):

    loss = sum_{i, k : y_i >= k} BCE(z_ik, 1[y_i > k])  /  #{(i, k) : y_i >= k}

i.e. the mean binary cross-entropy over every (sample, task) pair that takes part, not a mean over samples
(coral-pytorch divides by that count too). `per_sample` is each sample's sum over its tasks (min(y, C - 2)
+ 1 of them); the batch loss is their sum over the total count, so it is not the mean of `per_sample`.
Every sample takes part in task 0, so the count is at least N. BCE by `binary_cross_entropy_with_logits`
(finite for logits of +-1e4). The ranks are the class order (see core/losses/coral.py).

    loss = CornLoss(num_classes=5)
    loss(outputs (N, 4), targets (N,))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.losses.coral import CumulativeLoss, rank_levels

__all__ = ["CornLoss"]


class CornLoss(CumulativeLoss):
    """sum over (sample, task) pairs with y >= k of BCE(z_k, 1[y > k]) / their number."""

    def _terms(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(each sample's summed BCE over its tasks (N,), how many tasks each takes part in (N,))."""
        labels = rank_levels(targets, self.num_classes, logits.dtype)  # 1[y > k]
        ranks = torch.arange(self.num_classes - 1, device=targets.device)
        mask = (targets[:, None] >= ranks).to(logits.dtype)  # y > k - 1
        bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        return (bce * mask).sum(dim=1), mask.sum(dim=1)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._terms(logits, targets)[0]

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total, count = self._terms(logits, targets)
        return total.sum() / count.sum()
