"""Focal loss: cross-entropy that down-weights the samples the model already gets right.

Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, in its softmax form:

    loss = -alpha_y (1 - p_y) ** gamma log p_y,   p = softmax(z)

gamma in [0, 10] (default 2; 0 is cross-entropy), alpha an optional weight: one number in (0, 1] for
every class (the paper's scalar alpha, as in kornia's focal_loss) or one weight in [0, 1] per class
(class balancing); without it alpha = 1.

Computed by a custom autograd function (batch mean folded in, no host reads), exactly in log space:
q = softmax of the logits with z_y masked to -inf (the other classes' distribution, q_y = 0), o = the
logsumexp of the other logits (max + log of the same sum of exponentials) and delta = z_y - o give

    log p_y = -softplus(-delta),   log(1 - p_y) = -softplus(delta),
    (1 - p_y) ** gamma = exp(gamma log(1 - p_y)),

so there is no log(0) even where p_y rounds to 1 or to 0 (logits of +-1e4: finite loss and gradient;
gamma = 0 is cross-entropy exactly). As p_k = (1 - p_y) q_k off the truth, the gradient is one number
per row times q - onehot(y):

    d loss / d z = alpha_y (1 - p_y) ** gamma ((1 - p_y) - gamma p_y log p_y) (q - onehot(y))

(at gamma = 0: alpha_y (p - onehot(y)), cross-entropy's).

    loss = FocalLoss(num_classes=10, gamma=2.0)
    loss = FocalLoss(num_classes=3, gamma=1.0, alpha=torch.tensor([0.25, 0.5, 1.0]))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range, reduce_output, upstream_gradient

__all__ = ["FocalLoss", "focal_loss"]


class _Focal(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, alpha: torch.Tensor, targets: torch.Tensor, gamma: float, mean: bool
    ) -> torch.Tensor:
        t = targets[:, None]
        z_y = logits.gather(1, t).squeeze(1)
        # q = softmax of the others (q_y = 0), unfused: faster than torch.softmax on a CPU at small C
        q = logits.scatter(1, t, float("-inf"))
        top = q.amax(dim=1, keepdim=True)
        q = q.sub_(top).exp_()
        total = q.sum(dim=1, keepdim=True)
        q = q.div_(total)
        delta = (z_y - top.squeeze(1)).sub_(torch.log(total.squeeze(1)))  # z_y - logsumexp of the others
        minus_log_p = F.softplus(-delta, threshold=40.0)  # -log p_y
        minus_log_1mp = F.softplus(delta, threshold=40.0)  # -log(1 - p_y)
        scale = alpha if gamma == 0.0 else torch.exp(minus_log_1mp * -gamma).mul_(alpha)
        loss = scale * minus_log_p
        # (1 - p_y) - gamma p_y log p_y
        coef = torch.addcmul(torch.sigmoid(-delta), minus_log_p, torch.sigmoid(delta), value=gamma)
        ctx.save_for_backward(q, coef.mul_(scale), t)
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, coef, t = ctx.saved_tensors
        g, _ = upstream_gradient(ctx, grad, q.shape[0])
        c = (coef * g)[:, None]
        return q.mul(c).scatter_(1, t, -c), None, None, None, None


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: torch.Tensor, gamma: float, *, mean: bool = False
) -> torch.Tensor:
    """-alpha_y (1 - p_y) ** gamma log p_y for `logits` (N, C), integer `targets` (N,) and the weight of
    each sample's class `alpha` (N,): per sample (N,), or the batch mean with `mean=True`."""
    return _Focal.apply(logits, alpha.to(logits.dtype), targets, float(gamma), mean)


class FocalLoss(ClassificationLoss):
    """-alpha_y (1 - p_y) ** gamma log p_y; buffer `class_weights` (C,) = alpha per class."""

    class_weights: torch.Tensor

    def __init__(
        self, num_classes: int, gamma: float = 2.0, alpha: float | torch.Tensor | None = None
    ) -> None:
        super().__init__(num_classes)
        self.gamma = check_range("loss.gamma", gamma, 0.0, 10.0)
        if alpha is None:
            weights = torch.ones(num_classes, dtype=torch.float64)
        elif isinstance(alpha, torch.Tensor):
            weights = alpha.detach().to("cpu", torch.float64).flatten()
            if weights.numel() != num_classes or not ((weights >= 0) & (weights <= 1)).all():
                raise SpecError("loss.alpha", f"needs {num_classes} class weights in [0, 1]")
        else:
            weights = torch.full((num_classes,), check_range("loss.alpha", alpha, 0.0, 1.0, lo_open=True))
        self.register_buffer("class_weights", weights.to(torch.float32))

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, mean: bool) -> torch.Tensor:
        alpha = self.class_weights.index_select(0, targets)
        return focal_loss(logits, targets, alpha, self.gamma, mean=mean)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=False)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets, mean=True)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, gamma={self.gamma}"
