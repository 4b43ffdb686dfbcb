"""SimLoss: cross-entropy that gives credit for probability put on classes similar to the truth.

Kobs et al., "SimLoss: Class Similarities in Cross Entropy", ISMIS 2020:

    loss = -log( sum_c S[y, c] * p_c ),   p = softmax(z)

computed exactly in log space: loss = logsumexp(z) - logsumexp(z + log S[y]) with log 0 = -inf,
which contributes nothing (and a zero gradient) instead of NaN, and stays finite however small p_y
gets (logits of +-1e4). The paper's lower bound epsilon is not needed. With S = I it is plain
cross-entropy.

    loss = SimLoss(similarity)   # similarity: C x C tensor, diagonal 1, entries in [0, 1]
    loss(logits, targets)
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_similarity

__all__ = ["SimLoss"]


class SimLoss(ClassificationLoss):
    """-log(sum_c S[y, c] p_c), in log space; buffer `log_similarity` = log S (-inf where S = 0)."""

    log_similarity: torch.Tensor

    def __init__(self, similarity: torch.Tensor) -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        self.register_buffer("log_similarity", torch.log(s))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_s = self.log_similarity.index_select(0, targets).to(logits.dtype)
        return torch.logsumexp(logits, dim=1) - torch.logsumexp(logits + log_s, dim=1)
