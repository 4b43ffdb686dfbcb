"""Partial credit: a wrong top prediction that is similar to the truth counts as partly correct.

With s = S[y, j] for the model's top prediction j = argmax z:

    loss = (CE(y) + s * CE(j)) / (1 + s)   if j != y and s >= min_similarity and s > 0
    loss = CE(y)                            otherwise

where CE(k) = -log p_k. The target becomes the mixture (onehot(y) + s onehot(j)) / (1 + s): the true
class always keeps full weight and the predicted class gets s times as much, so with s = 0.5 the
mistake is "half-correct" (half the credit of the truth), with s = 1 it is as good as the truth, and
with s = 0 it is plain cross-entropy. The choice of j is an argmax and no gradient flows through it
(it is piecewise constant); gradients flow only through the log-probabilities.
Source: this project's formulation of partial credit for near misses (graded relevance).

    loss = PartialCreditLoss(similarity, min_similarity=0.3)
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_range, check_similarity

__all__ = ["PartialCreditLoss"]


class PartialCreditLoss(ClassificationLoss):
    """(CE(y) + s CE(argmax)) / (1 + s) for similar wrong predictions; `min_similarity` in [0, 1]."""

    similarity: torch.Tensor

    def __init__(self, similarity: torch.Tensor, min_similarity: float = 0.0) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        self.min_similarity = check_range("loss.min_similarity", min_similarity, 0.0, 1.0)
        self.register_buffer("similarity", s)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        with torch.no_grad():
            pred = logits.argmax(dim=1)
            s = self.similarity[targets, pred].to(logits.dtype)
            credit = (pred != targets) & (s >= self.min_similarity) & (s > 0)
            s = torch.where(credit, s, torch.zeros_like(s))
        ce_y = -log_p.gather(1, targets[:, None]).squeeze(1)
        ce_j = -log_p.gather(1, pred[:, None]).squeeze(1)
        return (ce_y + s * ce_j) / (1.0 + s)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, min_similarity={self.min_similarity}"
