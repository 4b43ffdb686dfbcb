"""Shared pieces of the losses: the base module (input checks, batch mean) and construction checks.

Every loss in `core.losses` subclasses `ClassificationLoss` and implements `per_sample(logits, targets)`
returning one value per row; `forward` checks shapes and returns the batch mean (`batch_mean`, which a
loss may override with a fused version; 0 with a gradient path for an empty batch). Hyperparameters are checked with `check_range`, similarity matrices with
`check_similarity`, both raising `core.errors.SpecError(field, reason)`.

    class MyLoss(ClassificationLoss):
        def per_sample(self, logits, targets): ...
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from core.errors import SpecError
from core.similarity.spec import TOLERANCE

__all__ = [
    "ClassificationLoss",
    "check_num_classes",
    "check_range",
    "check_similarity",
    "reduce_output",
    "upstream_gradient",
]


def check_range(
    field: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return `value` as float if it is finite and within [lo, hi] (open ends as asked), else SpecError."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SpecError(field, f"must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise SpecError(field, f"must be a finite number, got {value!r}")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise SpecError(field, f"must be {'>' if lo_open else '>='} {lo:g}, got {x:g}")
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise SpecError(field, f"must be {'<' if hi_open else '<='} {hi:g}, got {x:g}")
    return x


def check_num_classes(num_classes: int, field: str = "classes") -> int:
    if not isinstance(num_classes, int) or num_classes < 2:
        raise SpecError(field, f"a classification loss needs at least 2 classes, got {num_classes}")
    return num_classes


def check_similarity(similarity: torch.Tensor, field: str = "similarity") -> torch.Tensor:
    """A float32 copy of S after checking: C x C, finite, in [0, 1], diagonal 1 (entries at most 1e-6
    outside [0, 1] are clipped to it, as for a `matrix` spec; the diagonal may be 1e-6 + 1e-5 off)."""
    if (
        not isinstance(similarity, torch.Tensor)
        or similarity.dim() != 2
        or similarity.shape[0] != similarity.shape[1]
    ):
        shape = tuple(similarity.shape) if isinstance(similarity, torch.Tensor) else type(similarity).__name__
        raise SpecError(field, f"must be a square C x C tensor, got {shape}")
    s = similarity.detach().to("cpu", torch.float32)
    check_num_classes(s.shape[0])
    if not torch.isfinite(s).all():
        raise SpecError(field, "must be finite")
    if (s < -TOLERANCE).any() or (s > 1 + TOLERANCE).any():
        raise SpecError(field, "entries must lie in [0, 1]")
    if not torch.allclose(torch.diagonal(s), torch.ones(s.shape[0]), atol=TOLERANCE):
        raise SpecError(field, "the diagonal must be 1")
    return s.clamp(0.0, 1.0).contiguous()


class ClassificationLoss(nn.Module):
    """Base class: `loss(logits (N, C), targets (N,) int) -> batch mean of per_sample`."""

    bounded = False
    """True for a bounded function of the softmax probabilities with no log-likelihood term (emd,
    expected_value, expected_cost, weighted_kappa): its gradient vanishes where the model is confidently
    wrong, and alone it trains slowly (docs/losses.md, "Loss guidance"). Read by `core.losses.guidance`."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = check_num_classes(num_classes)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be (N, {self.num_classes}), got {tuple(logits.shape)}")
        if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
            raise ValueError(f"targets must be (N,) = ({logits.shape[0]},), got {tuple(targets.shape)}")
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise ValueError(f"targets must be integer class indices, got {targets.dtype}")
        if logits.shape[0] == 0:
            return logits.sum() * 0.0
        return self.batch_mean(logits, targets.long())

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean of per_sample; a loss may override it with a fused version (fewer ops per step)."""
        return self.per_sample(logits, targets).mean()

    def target_distribution(self) -> torch.Tensor | None:
        """(C, C) float64, row y the distribution q the loss trains class y towards when the loss is a
        cross-entropy (or KL) to q (gradient softmax(z) - q, minimised at softmax(z) = q); None when it is
        not (the default). Read by `core.losses.guidance`."""
        return None

    def target_weights(self) -> torch.Tensor | None:
        """(C, C) float64, row y (summing to 1) how much the loss credits each class for truth y when it
        weighs classes without being a cross-entropy to them (simloss, expected_cost, slace); None
        otherwise (the default). Read by `core.losses.guidance`."""
        return None

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


def reduce_output(ctx: Any, loss: torch.Tensor, mean: bool) -> torch.Tensor:
    """The end of a fused loss function's forward: the batch mean of `loss` (N,) when `mean` (what
    `ClassificationLoss.batch_mean` asks for), else `loss` itself; `ctx` remembers which for backward."""
    ctx.mean = mean
    return loss.mean() if mean else loss


def upstream_gradient(ctx: Any, grad: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(g, column): the upstream gradient of each sample's loss, g = grad / n (0-d) after a batch mean or
    grad (N,) per sample, and the same shaped to multiply (N, C) rows: g itself or g[:, None]."""
    if ctx.mean:
        g = grad / n
        return g, g
    return grad, grad[:, None]
