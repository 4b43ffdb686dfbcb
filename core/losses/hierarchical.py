"""Hierarchical cross-entropy (HXE) over a class tree.

Bertinetto et al., "Making Better Mistakes: Leveraging Class Hierarchies with Deep Networks", CVPR 2020.
For the true leaf y with path y = C^(0), C^(1), ..., C^(h) = root:

    loss = -sum_{l=0}^{h-1} exp(-alpha * l) * log p(C^(l) | C^(l+1))
    p(C^(l) | C^(l+1)) = p(C^(l)) / p(C^(l+1))

where p(node) is the sum of softmax probabilities of the classes (leaves) below it and l, the number
of edges from the leaf up to C^(l), is the node's height above the leaves (the paper's h(C) for a
balanced tree). A small alpha weights all levels alike; a large one approaches plain cross-entropy
(which HXE is exactly for a flat tree). Several roots are joined under one virtual root; tree nodes
with no class below them are ignored.

Computed in log space: log p(node) = logsumexp of the logits of its leaves - logsumexp of all logits,
built level by level from the leaves up (O(N * nodes) memory), and the sum telescopes into
-sum_nodes W[y, node] * log p(node) with a precomputed (C, nodes) weight buffer `weights`.

    loss = HierarchicalXELoss(paths=[["cat", "feline", "animal"], ["dog", "canine", "animal"]], alpha=0.1)
"""

from __future__ import annotations

import math

import torch

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range

__all__ = ["HierarchicalXELoss"]


class HierarchicalXELoss(ClassificationLoss):
    """HXE; `paths[k]` is [class k, its parent, ..., its root]; `alpha` in (0, 10]."""

    weights: torch.Tensor

    def __init__(self, paths: list[list[str]], alpha: float = 0.1) -> None:
        super().__init__(len(paths))
        self.alpha = check_range("loss.alpha", alpha, 0.0, 10.0, lo_open=True)
        if any(len(p) < 2 for p in paths):
            raise SpecError("similarity.parents", "every class needs a parent in the hierarchy")
        roots = {p[-1] for p in paths}
        if len(roots) > 1:
            paths = [p + [None] for p in paths]  # a virtual root above all roots
        c = len(paths)
        depth: dict[object, int] = {}
        parent: dict[object, object] = {}
        for p in paths:
            for l, node in enumerate(p):
                depth[node] = len(p) - 1 - l
                if l + 1 < len(p):
                    parent[node] = p[l + 1]
        leaves = [p[0] for p in paths]
        inner = sorted((n for n in depth if depth[n] > 0 and n not in set(leaves)), key=lambda n: -depth[n])
        if set(leaves) & set(parent.values()):
            raise SpecError("similarity.parents", "classes must be leaves of the hierarchy")
        index = {n: k for k, n in enumerate(leaves + inner)}
        # levels, deepest first: the inner nodes at depth d are computed from their children
        self._levels: list[tuple[str, str, int]] = []
        by_depth: dict[int, list[object]] = {}
        for n in inner:
            by_depth.setdefault(depth[n], []).append(n)
        for d in sorted(by_depth, reverse=True):
            nodes = by_depth[d]
            local = {n: k for k, n in enumerate(nodes)}
            kids = [n for n in leaves + inner if parent.get(n) in local and depth[n] == d + 1]
            name = f"level{d}"
            self.register_buffer(f"{name}_children", torch.tensor([index[n] for n in kids]))
            self.register_buffer(f"{name}_parents", torch.tensor([local[parent[n]] for n in kids]))
            self._levels.append((f"{name}_children", f"{name}_parents", len(nodes)))
        weights = torch.zeros(c, len(index), dtype=torch.float64)
        for k, p in enumerate(paths):
            lam = [math.exp(-self.alpha * l) for l in range(len(p))]
            weights[k, index[p[0]]] += 1.0
            for l in range(1, len(p) - 1):
                weights[k, index[p[l]]] += lam[l] - lam[l - 1]
        self.register_buffer("weights", weights.to(torch.float32))

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = logits.shape[0]
        mass = logits  # log mass (up to the common logsumexp) of every node computed so far
        for children_name, parents_name, count in self._levels:
            children = getattr(self, children_name)
            local = getattr(self, parents_name)[None, :].expand(n, -1)
            x = mass.index_select(1, children)
            top = x.new_full((n, count), float("-inf")).scatter_reduce(1, local, x.detach(), "amax")
            total = x.new_zeros((n, count)).scatter_add(1, local, torch.exp(x - top.gather(1, local)))
            mass = torch.cat([mass, top + torch.log(total)], dim=1)
        log_p = mass - torch.logsumexp(logits, dim=1, keepdim=True)
        return -(self.weights.index_select(0, targets).to(logits.dtype) * log_p).sum(dim=1)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}, levels={len(self._levels)}"
