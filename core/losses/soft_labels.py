"""Soft labels from the similarity matrix: cross-entropy (or KL) against q = S[y] / sum(S[y]).

    loss = -sum_c q_c log p_c = logsumexp(z) - sum_c q_c z_c          (divergence="cross_entropy")
    loss = sum_c q_c (log q_c - log p_c)                                (divergence="kl": minus H(q))
    q = S[y] ** (1 / T) / sum_c S[y, c] ** (1 / T),   d loss / d z = p - q

so "horse" with S[horse] = [1, 0.25, 0, 0] becomes [0.8, 0.2, 0, 0]; a temperature T < 1 sharpens
toward the one-hot label, T > 1 flattens. The target rows and their entropies are precomputed once as
buffers; logsumexp(z) is read off the softmax as z_y - log p_y (recomputed directly in the rare rows
where p_y is below the square root of the dtype's smallest normal number, so always exact), and a
custom autograd function keeps the cost near plain cross-entropy. With S = I it is
plain cross-entropy. Source: the "soft labels" of Bertinetto et al., "Making Better Mistakes",
CVPR 2020 (there from a hierarchy; here from any S), a similarity-aware label smoothing (Szegedy et
al. 2016).

    loss = SoftLabelLoss(similarity, temperature=1.0, divergence="kl")
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range, check_similarity

__all__ = ["SoftLabelLoss", "soft_target_cross_entropy"]


class _SoftTargetCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        # logsumexp(z) = z_y - log p_y, exact unless p_y is tiny; those rows are recomputed directly
        t = targets[:, None]
        p_y = p.gather(1, t).squeeze(1)
        lse = logits.gather(1, t).squeeze(1) - torch.log(p_y)
        small = p_y < torch.finfo(p.dtype).tiny ** 0.5
        if bool(small.any()):
            rows = small.nonzero().squeeze(1)
            lse[rows] = torch.logsumexp(logits.index_select(0, rows), dim=1)
        q = table.index_select(0, targets)
        ctx.save_for_backward(p.sub_(q))  # p - q, the gradient per unit of output
        return lse - q.mul_(logits).sum(dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (diff,) = ctx.saved_tensors
        return diff * grad[:, None], None, None


def soft_target_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """Per-sample -sum_c table[y, c] log softmax(logits)_c (rows of `table` must sum to 1)."""
    return _SoftTargetCE.apply(logits, table.to(logits.dtype), targets)


class SoftLabelLoss(ClassificationLoss):
    """Cross-entropy or KL to q = normalise(S[y] ** (1/T)); `temperature` in (0, 100]."""

    target_probs: torch.Tensor
    target_entropy: torch.Tensor

    def __init__(
        self, similarity: torch.Tensor, temperature: float = 1.0, divergence: str = "cross_entropy"
    ) -> None:
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
        ce = soft_target_cross_entropy(logits, targets, self.target_probs)
        if self.divergence == "kl":
            ce = ce - self.target_entropy.index_select(0, targets).to(logits.dtype)
        return ce

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, temperature={self.temperature}, divergence={self.divergence!r}"
        )
