"""A weighted sum of losses: `0.7 * cross_entropy + 0.3 * expected_value`.

    loss = CombinedLoss([CrossEntropyLoss(10), ExpectedValueLoss(torch.arange(10.0))], [0.7, 0.3])

loss = sum_i w_i * loss_i with 1..8 components and weights w_i in (0, 1000]; all components must
agree on the number of classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range

__all__ = ["MAX_COMPONENTS", "CombinedLoss"]

MAX_COMPONENTS = 8


class CombinedLoss(ClassificationLoss):
    """sum_i weights[i] * losses[i](logits, targets); buffer `component_weights`."""

    component_weights: torch.Tensor

    def __init__(self, losses: Sequence[ClassificationLoss], weights: Sequence[float]) -> None:
        if not 1 <= len(losses) <= MAX_COMPONENTS or len(weights) != len(losses):
            raise SpecError("loss.components", f"need 1..{MAX_COMPONENTS} losses with one weight each")
        num_classes = {loss.num_classes for loss in losses}
        if len(num_classes) != 1:
            raise SpecError(
                "loss.components", f"components disagree on the number of classes: {sorted(num_classes)}"
            )
        super().__init__(num_classes.pop())
        w = [
            check_range(f"loss.components.{k}.weight", x, 0.0, 1000.0, lo_open=True)
            for k, x in enumerate(weights)
        ]
        self.components = nn.ModuleList(losses)
        self.register_buffer("component_weights", torch.tensor(w, dtype=torch.float32))

    @property
    def bounded(self) -> bool:  # type: ignore[override]
        """Bounded when every component is (no component brings a log-likelihood term)."""
        return all(loss.bounded for loss in self.components)

    def _mixture(self, rows: list[torch.Tensor | None]) -> torch.Tensor | None:
        """sum_k w_k rows_k / sum_k w_k over the components whose rows are not None (None if none)."""
        w = self.component_weights.detach().to("cpu", torch.float64)
        kept = [(w[k], r) for k, r in enumerate(rows) if r is not None]
        if not kept:
            return None
        return sum(wk * r for wk, r in kept) / sum(wk for wk, _ in kept)

    def target_distribution(self) -> torch.Tensor | None:
        """When every component is a cross-entropy to target rows, the loss is (sum w) times the
        cross-entropy to their weighted mixture: that mixture; else None."""
        rows = [loss.target_distribution() for loss in self.components]
        return None if any(r is None for r in rows) else self._mixture(rows)

    def target_weights(self) -> torch.Tensor | None:
        """The weighted mixture of the target rows (distributions or weights) of the components that
        have any (None if none has): what the soft part of the loss credits."""
        rows = [loss.target_distribution() for loss in self.components]
        rows = [r if r is not None else loss.target_weights() for r, loss in zip(rows, self.components)]
        return self._mixture(rows)

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total = logits.new_zeros(logits.shape[0])
        for k, loss in enumerate(self.components):
            total = total + self.component_weights[k].to(logits.dtype) * loss.per_sample(logits, targets)
        return total
