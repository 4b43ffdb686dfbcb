"""Soft labels from the similarity matrix: cross-entropy (or KL) against q = S[y] / sum(S[y]).

    loss = -sum_c q_c log p_c                  (divergence="cross_entropy", default)
    loss = sum_c q_c (log q_c - log p_c)        (divergence="kl"; same gradient, 0 at the optimum)
    q = S[y] ** (1 / T) / sum_c S[y, c] ** (1 / T)

so "horse" with S[horse] = [1, 0.25, 0, 0] becomes [0.8, 0.2, 0, 0]; a temperature T < 1 sharpens
toward the one-hot label, T > 1 flattens. The target rows and their entropies are precomputed once as
buffers. With S = I it is plain cross-entropy. Source: the "soft labels" of
Bertinetto et al., "Making Better Mistakes", CVPR 2020 (there from a hierarchy; here from any S), a
similarity-aware label smoothing (Szegedy et al. 2016).

    loss = SoftLabelLoss(similarity, temperature=1.0, divergence="kl")
"""

from __future__ import annotations

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range, check_similarity

__all__ = ["SoftLabelLoss"]


class SoftLabelLoss(ClassificationLoss):
    """Cross-entropy or KL to q = normalise(S[y] ** (1/T)); `temperature` in (0, 100]."""

    target_probs: torch.Tensor
    target_entropy: torch.Tensor

    def __init__(self, similarity: torch.Tensor, temperature: float = 1.0, divergence: str = "cross_entropy") -> None:
        s = check_similarity(similarity).to(torch.float64)
        super().__init__(s.shape[0])
        self.temperature = check_range("loss.temperature", temperature, 0.0, 100.0, lo_open=True)
        if divergence not in ("cross_entropy", "kl"):
            raise SpecError("loss.divergence", f"must be 'cross_entropy' or 'kl', got {divergence!r}")
        self.divergence = divergence
        q = s.pow(1.0 / self.temperature)
        q = q / q.sum(dim=1, keepdim=True)
        entropy = -torch.where(q > 0, q * torch.log(q), torch.zeros_like(q)).sum(dim=1)
        self.register_buffer("target_probs", q.to(torch.float32))
        self.register_buffer("target_entropy", entropy.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        q = self.target_probs.index_select(0, targets).to(logits.dtype)
        ce = -(q * torch.log_softmax(logits, dim=1)).sum(dim=1)
        if self.divergence == "kl":
            ce = ce - self.target_entropy.index_select(0, targets).to(logits.dtype)
        return ce

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, temperature={self.temperature}, divergence={self.divergence!r}"
