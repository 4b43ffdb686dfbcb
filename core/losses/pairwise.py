"""Pairwise (one-vs-rest) loss: push every wrong class down, the more the less similar it is.

    loss = -log p_y - sum_{j != y} (1 - S[y, j]) * log(1 - p_j),   p = softmax(z)

a binary cross-entropy "j is not the answer" per wrong class, weighted by its dissimilarity to the
truth (a similar class is pushed down less), plus the usual cross-entropy toward y. log(1 - p_j) is
computed exactly: log1p(-exp(log p_j)) where p_j <= 1/2 (every class but the top one), and
logsumexp(z without the top class) - logsumexp(z) for the top class, so the loss and its gradient
stay finite with logits of +-1e4. Source: this project's similarity-weighted form of the one-vs-rest
binary cross-entropy (as in multi-label training); with S = I it is CE plus an unweighted one-vs-rest BCE.

    loss = PairwiseLoss(similarity)
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_similarity

__all__ = ["PairwiseLoss", "log1m_softmax"]


def log1m_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - softmax(logits)) (N, C), exact for every class, finite for finite logits and C >= 2."""
    log_p = torch.log_softmax(logits, dim=1)
    top = logits.argmax(dim=1, keepdim=True)
    # every class but the top one has p <= 1/2, where log1p(-exp(.)) is accurate; mask the top one
    # with a harmless constant first so its (discarded) branch cannot produce inf/NaN gradients
    rest = torch.log1p(-torch.exp(log_p.scatter(1, top, -1.0)))
    others = torch.logsumexp(logits.scatter(1, top, float("-inf")), dim=1, keepdim=True)
    top_value = others - torch.logsumexp(logits, dim=1, keepdim=True)
    return rest.scatter(1, top, top_value)


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
        cost = self.cost.index_select(0, targets).to(logits.dtype)
        log_p_y = torch.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        return -log_p_y - (cost * log1m_softmax(logits)).sum(dim=1)
