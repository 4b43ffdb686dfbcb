"""Unimodal soft labels for ordered classes: cross-entropy against a target peaked at the true class.

    q = (1 - eta) * onehot(y) + eta * U[r_y, r_c]
    loss = -sum_c q_c log p_c,   p = softmax(z),   d loss / d z = p - q

with U the table of a unimodal `family` (beta, binomial, poisson, exponential, triangular; formulas and
sources in `core.losses.unimodal_targets`), r the classes' positions in value order (only the order
counts, as in emd) and eta in [0, 1] how much of the target is the soft one (1: all of it; dlordinal's
`eta`). This is dlordinal's `CustomTargetsLoss` with cross-entropy (BetaLoss, BinomialLoss, PoissonLoss,
ExponentialLoss, TriangularLoss and their deprecated *CrossEntropyLoss forms). The target rows are
precomputed once (a buffer) and the loss shares the soft-labels loss's fused autograd functions
(`core.losses.soft_labels.soft_target_cross_entropy`): exact for logits of +-1e4, no log(0) (log p is
a log-softmax; a zero target entry contributes nothing). `algorithm` as for soft_labels: "auto"
(direct on CPU, log_space elsewhere), "direct" or "log_space".

    loss = UnimodalSoftLabelLoss(num_classes=5, family="binomial")
    loss = UnimodalSoftLabelLoss(num_classes=5, family="exponential", p=2.0, tau=0.5, eta=0.8)
"""

from __future__ import annotations

import torch

from core.losses.base import ClassificationLoss, check_range
from core.losses.order import rank_of
from core.losses.soft_labels import ALGORITHMS, soft_target_cross_entropy
from core.losses.unimodal_targets import unimodal_table

__all__ = ["UnimodalSoftLabelLoss"]


class UnimodalSoftLabelLoss(ClassificationLoss):
    """Cross-entropy to (1 - eta) onehot(y) + eta U[r_y]; buffer `target_probs` (C, C) in class order."""

    target_probs: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        family: str,
        *,
        eta: float = 1.0,
        p: float = 1.0,
        tau: float = 1.0,
        alpha2: float = 0.05,
        order: torch.Tensor | None = None,
        algorithm: str = "auto",
    ) -> None:
        super().__init__(num_classes)
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self.family, self.algorithm = family, algorithm
        self.eta = check_range("loss.eta", eta, 0.0, 1.0)
        p = check_range("loss.p", p, 0.0, 10.0, lo_open=True)
        tau = check_range("loss.tau", tau, 0.0, 100.0, lo_open=True)
        alpha2 = check_range("loss.alpha2", alpha2, 0.0, 0.2)
        rank = rank_of(num_classes, order)
        table = unimodal_table(family, num_classes, p=p, tau=tau, alpha2=alpha2)
        table = table[rank][:, rank]  # rows and columns in class order
        q = (1.0 - self.eta) * torch.eye(num_classes, dtype=torch.float64) + self.eta * table
        self.register_buffer("target_probs", q.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return soft_target_cross_entropy(logits, targets, self.target_probs, algorithm=self.algorithm)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return soft_target_cross_entropy(
            logits, targets, self.target_probs, mean=True, algorithm=self.algorithm
        )

    def target_distribution(self) -> torch.Tensor:
        """The target rows (1 - eta) onehot(y) + eta U[r_y] in class order (buffer `target_probs`)."""
        return self.target_probs.detach().to("cpu", torch.float64)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, family={self.family!r}, eta={self.eta}"
