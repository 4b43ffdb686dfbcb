"""Class order for the ordinal losses: each class's position in value order, and distances in steps.

The ordinal losses (emd, cdw_ce, weighted_kappa, slace, unimodal_soft_labels) use only the order of the
classes' values (class order by default, or the order of an ordinal similarity spec's `values`), not
their spacing: neighbours in value order are one step apart.

    rank = rank_of(4, torch.tensor([2, 0, 1, 3]))   # order: class indices, lowest value first
    # tensor([1, 2, 0, 3]): class 0 is second, class 2 first
    d = rank_distance(4, None)                       # |i - j| (4, 4), float64
"""

from __future__ import annotations

import torch

from core.errors import SpecError

__all__ = ["rank_distance", "rank_of"]


def rank_of(num_classes: int, order: torch.Tensor | None) -> torch.Tensor:
    """Each class's position in value order (C,) long, from `order` (the class indices, lowest value
    first; None: class order). SpecError('similarity.values') unless `order` is a permutation."""
    order = torch.arange(num_classes) if order is None else torch.as_tensor(order, dtype=torch.long)
    if sorted(order.flatten().tolist()) != list(range(num_classes)):
        raise SpecError("similarity.values", "order must be a permutation of the class indices")
    return torch.argsort(order)


def rank_distance(num_classes: int, order: torch.Tensor | None) -> torch.Tensor:
    """|r_i - r_j| (C, C) float64: how many steps apart two classes are in value order."""
    rank = rank_of(num_classes, order).to(torch.float64)
    return (rank[:, None] - rank[None, :]).abs()
