"""SimLoss: cross-entropy that gives credit for probability put on classes similar to the truth.

Kobs et al., "SimLoss: Class Similarities in Cross Entropy", ISMIS 2020:

    loss = -log( sum_c S[y, c] * p_c ),   p = softmax(z)
    d loss / d z = p - r,   r_c = S[y, c] p_c / sum_k S[y, k] p_k

Exact and finite however small the probabilities get (logits of +-1e4) and wherever S is 0; the
paper's lower bound epsilon is not needed, and with S = I it is plain cross-entropy. Two algorithms,
each a custom autograd function that returns p - r as the gradient and folds the batch mean in:

- "direct" (the default on CPU, where exp and log dominate the cost): the sum itself from one softmax,
  exact to rounding; rows whose sum would underflow (below the square root of the dtype's smallest
  normal number) are recomputed in log space, loss = logsumexp(z) - logsumexp(z + log S[y]), which
  needs one check of the batch on the host;
- "log_space" (the default on CUDA, where kernel launches and host synchronisation dominate): every
  row in log space, with no host synchronisation and eight kernels forward and backward:

      b_c = log S[y, c] + log p_c,   loss = -logsumexp_c(b) = log r_j - b_j   with j = argmax_c b_c,
      log r = log_softmax(b)

  (b_j, the largest term, carries the magnitude and log r_j lies in [-log C, 0]: no cancellation
  however far the truth's logit lies below the others; with S = I, b is log p_y at y, -inf elsewhere).

Both are checked against the same float64 reference (tests/core/test_losses.py) and against each other
on CUDA (tests/core/test_losses_cuda.py); costs in docs/benchmarks.md, "Loss overhead".

    loss = SimLoss(similarity)   # similarity: C x C tensor, diagonal 1, entries in [0, 1]
    loss(logits, targets)
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.losses.base import ClassificationLoss, check_similarity, reduce_output, upstream_gradient

__all__ = ["SimLoss", "simloss"]


ALGORITHMS = ("auto", "direct", "log_space")


class _Direct(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, similarity: torch.Tensor, targets: torch.Tensor, mean: bool
    ) -> torch.Tensor:
        p = torch.softmax(logits, dim=1)
        weighted = similarity.index_select(0, targets).mul_(p)  # S[y, c] p_c (a fresh gathered copy)
        total = weighted.sum(dim=1)
        floor = torch.finfo(logits.dtype).tiny ** 0.5
        small = total < floor
        scale = 1.0 / total
        loss = -torch.log(total)
        if bool(small.any()):
            rows = small.nonzero().squeeze(1)
            z = logits.index_select(0, rows)
            shifted = z + torch.log(similarity.index_select(0, targets.index_select(0, rows)))
            loss[rows] = torch.logsumexp(z, dim=1) - torch.logsumexp(shifted, dim=1)
            weighted[rows] = torch.softmax(shifted, dim=1)
            scale[rows] = 1.0
        ctx.save_for_backward(p, weighted, scale)
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        p, weighted, scale = ctx.saved_tensors
        g, column = upstream_gradient(ctx, grad, p.shape[0])
        out = p * column
        out.addcmul_(weighted, (-g * scale)[:, None])
        return out, None, None, None


class _LogSpace(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, log_similarity: torch.Tensor, targets: torch.Tensor, mean: bool
    ) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=1)
        b = log_similarity.index_select(0, targets).add_(log_p)  # log(S[y, c] p_c); finite at c = y
        log_r = torch.log_softmax(b, dim=1)
        b_max, j = b.max(dim=1, keepdim=True)
        loss = log_r.gather(1, j).sub_(b_max).squeeze(1)
        ctx.save_for_backward(log_p, log_r)
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        log_p, log_r = ctx.saved_tensors
        _, column = upstream_gradient(ctx, grad, log_p.shape[0])
        return log_p.exp().sub_(log_r.exp()).mul_(column), None, None, None


def simloss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    similarity: torch.Tensor,
    *,
    mean: bool = False,
    algorithm: str = "auto",
) -> torch.Tensor:
    """SimLoss of `logits` (N, C) for integer `targets` (N,) under `similarity` (C, C, diagonal 1): per
    sample (N,), or the batch mean with `mean=True`."""
    if _log_space(algorithm, logits):
        return _LogSpace.apply(logits, torch.log(similarity.to(logits.dtype)), targets, mean)
    return _Direct.apply(logits, similarity.to(logits.dtype), targets, mean)


def _log_space(algorithm: str, logits: torch.Tensor) -> bool:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    return algorithm == "log_space" or (algorithm == "auto" and logits.device.type != "cpu")


class SimLoss(ClassificationLoss):
    """-log(sum_c S[y, c] p_c); buffer `similarity` = S (and log S, derived from it).

    `algorithm`: "auto" (direct on CPU, log_space elsewhere), "direct" or "log_space" (module docstring).
    """

    similarity: torch.Tensor
    log_similarity: torch.Tensor

    def __init__(self, similarity: torch.Tensor, algorithm: str = "auto") -> None:
        s = check_similarity(similarity)
        super().__init__(s.shape[0])
        _log_space(algorithm, similarity)  # checks the name
        self.algorithm = algorithm
        self.register_buffer("similarity", s)
        self.register_buffer("log_similarity", torch.log(s), persistent=False)  # log 0 = -inf: no credit
        self.register_load_state_dict_post_hook(lambda module, _keys: module._derive_log())

    def _derive_log(self) -> None:
        self.log_similarity = torch.log(self.similarity.to(torch.float32))

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, mean: bool) -> torch.Tensor:
        if not _log_space(self.algorithm, logits):
            return _Direct.apply(logits, self.similarity.to(logits.dtype), targets, mean)
        if logits.dtype == self.log_similarity.dtype == torch.float32:
            log_s = self.log_similarity
        else:  # higher precision: from S's float32 values, exactly
            log_s = torch.log(self.similarity.to(logits.dtype))
        return _LogSpace.apply(logits, log_s, targets, mean)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=False)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=True)

    def target_weights(self) -> torch.Tensor:
        """S[y] / sum(S[y]): the share of credit each class gets for truth y (at uniform logits the
        gradient is 1/C - this row; the loss itself is minimised by any p on classes with S[y, c] = 1)."""
        s = self.similarity.detach().to("cpu", torch.float64)
        return s / s.sum(dim=1, keepdim=True)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, algorithm={self.algorithm!r}"
