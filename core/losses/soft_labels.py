"""Soft labels from the similarity matrix: cross-entropy (or KL) against q = S[y] / sum(S[y]).

    loss = -sum_c q_c log p_c,   log p = log_softmax(z)               (divergence="cross_entropy")
    loss = sum_c q_c (log q_c - log p_c)                                (divergence="kl": minus H(q))
    q = S[y] ** (1 / T) / sum_c S[y, c] ** (1 / T),   d loss / d z = p - q   (normalise="power")
    q = softmax(S[y] / T) = exp(S[y] / T) / sum_c exp(S[y, c] / T)          (normalise="softmax")

so "horse" with S[horse] = [1, 0.25, 0, 0] becomes [0.8, 0.2, 0, 0]; a temperature T < 1 sharpens
toward the one-hot label, T > 1 flattens. "power" (the default) keeps zeros of S at zero and is plain
cross-entropy at S = I; "softmax" is Ludwig's `class_similarities` target (its
`class_similarities_temperature` T: each row of the similarity matrix through
`ludwig.utils.math_utils.softmax(row, temperature=T)`, ludwig/features/category_feature.py), which
gives every class some mass (exp(0) for S = 0) and is not one-hot even at S = I. With an ordinal S =
r ** |i - j| and "power", q is SORD's target softmax(-alpha |i - j|) (Diaz and Marathe, CVPR 2019;
dlordinal's SORDLoss) for alpha = -ln(r) / T. The target rows and their entropies are precomputed once as
buffers. Two algorithms, each a custom autograd function returning p - q as the gradient with the batch
mean folded in: "direct" (the default on CPU) reads logsumexp(z) off one softmax as z_y - log p_y
(recomputed directly in the rare rows where p_y is below the square root of the dtype's smallest
normal number, which needs one check of the batch on the host); "log_space" (the default on CUDA) takes
log p from one fused log-softmax, exact for logits of +-1e4, with no host synchronisation. With S = I it
is plain cross-entropy. Source: the "soft labels" of Bertinetto et al., "Making Better Mistakes",
CVPR 2020 (there from a hierarchy; here from any S), a similarity-aware label smoothing (Szegedy et
al. 2016).

    loss = SoftLabelLoss(similarity, temperature=1.0, divergence="kl")
    loss = SoftLabelLoss(similarity, temperature=2.0, normalise="softmax")
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.errors import SpecError
from core.losses.base import (
    ClassificationLoss,
    check_range,
    check_similarity,
    reduce_output,
    upstream_gradient,
)

__all__ = ["SoftLabelLoss", "soft_target_cross_entropy"]


ALGORITHMS = ("auto", "direct", "log_space")
NORMALISE = ("power", "softmax")


class _Direct(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, mean: bool
    ) -> torch.Tensor:
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
        ctx.mean = mean
        loss = lse - q.mul_(logits).sum(dim=1)
        return loss.mean() if mean else loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (diff,) = ctx.saved_tensors
        return diff * upstream_gradient(ctx, grad, diff.shape[0])[1], None, None, None


class _LogSpace(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, mean: bool
    ) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        q = table.index_select(0, targets)
        loss = torch.mul(q, log_p).sum(dim=1).neg_()  # log p is finite for finite logits
        ctx.save_for_backward(log_p, q)
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        log_p, q = ctx.saved_tensors
        _, column = upstream_gradient(ctx, grad, log_p.shape[0])
        return log_p.exp().sub_(q).mul_(column), None, None, None


def soft_target_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    table: torch.Tensor,
    *,
    mean: bool = False,
    algorithm: str = "auto",
) -> torch.Tensor:
    """-sum_c table[y, c] log softmax(logits)_c (rows of `table` must sum to 1): per sample (N,), or the
    batch mean with `mean=True`. `algorithm`: "auto" (direct on CPU, log_space elsewhere), "direct",
    "log_space"."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    log_space = algorithm == "log_space" or (algorithm == "auto" and logits.device.type != "cpu")
    return (_LogSpace if log_space else _Direct).apply(logits, table.to(logits.dtype), targets, mean)


class SoftLabelLoss(ClassificationLoss):
    """Cross-entropy or KL to q = normalise(S[y] ** (1/T)) or softmax(S[y] / T); `temperature` in (0, 100]."""

    target_probs: torch.Tensor
    target_entropy: torch.Tensor

    def __init__(
        self,
        similarity: torch.Tensor,
        temperature: float = 1.0,
        divergence: str = "cross_entropy",
        algorithm: str = "auto",
        normalise: str = "power",
    ) -> None:
        s = check_similarity(similarity).to(torch.float64)
        super().__init__(s.shape[0])
        self.temperature = check_range("loss.temperature", temperature, 0.0, 100.0, lo_open=True)
        if divergence not in ("cross_entropy", "kl"):
            raise SpecError("loss.divergence", f"must be 'cross_entropy' or 'kl', got {divergence!r}")
        self.divergence = divergence
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self.algorithm = algorithm
        if normalise not in NORMALISE:
            raise SpecError("loss.normalise", f"must be 'power' or 'softmax', got {normalise!r}")
        self.normalise = normalise
        if normalise == "softmax":
            q = torch.softmax(s / self.temperature, dim=1)
        else:
            q = s.pow(1.0 / self.temperature)
            q = q / q.sum(dim=1, keepdim=True)
        entropy = -torch.where(q > 0, q * torch.log(q), torch.zeros_like(q)).sum(dim=1)
        self.register_buffer("target_probs", q.to(torch.float32))
        self.register_buffer("target_entropy", entropy.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ce = soft_target_cross_entropy(logits, targets, self.target_probs, algorithm=self.algorithm)
        if self.divergence == "kl":
            ce = ce - self.target_entropy.index_select(0, targets).to(logits.dtype)
        return ce

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.divergence == "kl":
            return self.per_sample(logits, targets).mean()
        return soft_target_cross_entropy(
            logits, targets, self.target_probs, mean=True, algorithm=self.algorithm
        )

    def target_distribution(self) -> torch.Tensor:
        """The soft target rows q (buffer `target_probs`; both divergences are minimised at p = q)."""
        return self.target_probs.detach().to("cpu", torch.float64)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, temperature={self.temperature}, "
            f"divergence={self.divergence!r}, normalise={self.normalise!r}, algorithm={self.algorithm!r}"
        )
