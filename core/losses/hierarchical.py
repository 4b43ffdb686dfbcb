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

`weighting="mbm_code"` uses the weights of the paper's published code instead (fiveai/making-better-
mistakes, better_mistakes/trees.py, `get_exponential_weighting(hierarchy, alpha, normalize=True)`, read
by `HierarchicalLLLoss` in better_mistakes/model/losses.py): the edge from C^(l) up to C^(l+1) weighs

    exp(-alpha * depth(C^(l))) / Z,   Z = sum_{n: every node of the tree, the root too} exp(-alpha * depth(n))

with depth the number of edges from the root (the tree: the classes' paths, under the virtual root when
there are several roots). It grows toward the root where the paper's formula shrinks, and no alpha maps
one onto the other (on an unbalanced tree even the scale differs per class); with a flat tree it is
cross-entropy times exp(-alpha) / (1 + C exp(-alpha)).

The sum telescopes into -sum_{nodes n on y's path} W[y, n] log p(n) with precomputed weights, and is
computed by a custom autograd function in log space: lse(n) = logsumexp of the logits of the leaves
below n, built level by level from the leaves up (a level: the nodes at one depth and their children),
so log p(n) = lse(n) - lse(root) is exact and finite for logits of +-1e4. A level computes, per parent
g, m_g = max of its children's lse, e = exp(lse(child) - m_g) (one exp per child), T_g = sum of e and
lse(g) = m_g + log T_g, with max and sum as plain tensor reductions: where the parents' child counts
differ by at most one, over a "slot-major" view of the children (the first child of every parent,
then the second, ...: a free view when the classes are listed round-robin by parent, else one gather),
else over a padded (parents x most children) gather, or, where padding would more than double a level,
with scatter. The gradient reuses e and T, top-down (one multiply per child, no exp):

    D(root) = sum_n W[y, n],   D(child) = e(child) / T(parent) * D(parent) - W[y, child],
    d loss / d z_c = D(leaf c)

(memory O(N * nodes), no host reads, the batch mean folded in).

    loss = HierarchicalXELoss(paths=[["cat", "feline", "animal"], ["dog", "canine", "animal"]], alpha=0.1)
    loss = HierarchicalXELoss(paths, alpha=0.1, weighting="mbm_code")
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from core.errors import SpecError
from core.losses.base import ClassificationLoss, check_range, reduce_output

__all__ = ["WEIGHTINGS", "HierarchicalXELoss"]

WEIGHTINGS = ("paper", "mbm_code")


@dataclass(frozen=True)
class _Level:
    """One level: `parents` nodes whose `children` are, in this order, the parents of the level below
    (`inner` of them; none for the deepest level) and then the leaves at this depth (buffer `leaf_ids`).

    `kind` is how the children are grouped by parent: "view" (they already lie slot-major: the k-th child
    of every parent, parents ordered by size; `base` slots of `parents` columns, then one child each of
    the first `extra` parents: max and sum are reductions over a view), "gather" (the same after a
    permutation), "padded" (a parents x `width` gather, padded with -inf) or "scatter" (scatter_reduce)."""

    prefix: str
    kind: str
    parents: int
    base: int
    extra: int
    width: int
    inner: int
    leaves: int
    all_leaves: bool  # the children are exactly the classes 0 .. C-1, in order
    has_padding: bool


def _halving_max(x: torch.Tensor) -> torch.Tensor:
    """x.amax(dim=1) for x (N, K, G) by elementwise maxima of halves: several times faster than the
    reduction kernel when G, the contiguous inner size, is too small for its vector loop."""
    if x.shape[1] == 1:
        return x[:, 0].clone()
    while x.shape[1] > 1:  # a fresh tensor from the first step on
        half = x.shape[1] // 2
        y = torch.maximum(x[:, :half], x[:, half : 2 * half])
        if x.shape[1] % 2:
            y[:, :1] = torch.maximum(y[:, :1], x[:, 2 * half :])
        x = y
    return x[:, 0]


def _group(level: _Level, x: torch.Tensor, buf: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(e, total, lse) of a level from its children's lse `x` (N, children): per parent m = max,
    e = exp(x - m) (in the level's layout), total = sum of e, lse = m + log(total)."""
    n = x.shape[0]
    if level.kind in ("view", "gather"):
        x = x.index_select(1, buf["order"]) if level.kind == "gather" else x.contiguous()
        cut = level.base * level.parents
        main = x[:, :cut].view(n, level.base, level.parents)
        top = _halving_max(main) if 1 < level.parents < 16 and level.base > 4 else main.amax(dim=1)
        if level.extra:
            tail = x[:, cut:]
            top[:, : level.extra] = torch.maximum(top[:, : level.extra], tail)
        e = torch.empty_like(x)
        e_main = e[:, :cut].view(n, level.base, level.parents)
        torch.sub(main, top[:, None, :], out=e_main)
        if level.extra:
            torch.sub(tail, top[:, : level.extra], out=e[:, cut:])
        e.exp_()
        total = e_main.sum(dim=1)
        if level.extra:
            total[:, : level.extra] += e[:, cut:]
    elif level.kind == "padded":
        e = x.index_select(1, buf["order"])
        if level.has_padding:
            e.index_fill_(1, buf["pads"], float("-inf"))
        grouped = e.view(n, level.parents, level.width)
        top = grouped.amax(dim=2)
        total = grouped.sub_(top[:, :, None]).exp_().sum(dim=2)
    else:
        index = buf["parent_of"][None, :].expand(n, -1)
        top = x.new_full((n, level.parents), float("-inf")).scatter_reduce(1, index, x, "amax")
        e = x - top.index_select(1, buf["parent_of"])
        total = x.new_zeros((n, level.parents)).scatter_add(1, index, e.exp_())
    return e, total, top.add_(torch.log(total))


def _ungroup(level: _Level, e: torch.Tensor, f: torch.Tensor, buf: dict[str, torch.Tensor]) -> torch.Tensor:
    """e * f[parent] (N, children) in the children's order, for per-parent factors f (N, parents)."""
    n = e.shape[0]
    if level.kind in ("view", "gather"):
        cut = level.base * level.parents
        out = torch.empty_like(e)
        torch.mul(
            e[:, :cut].view(n, level.base, level.parents),
            f[:, None, :],
            out=out[:, :cut].view(n, -1, level.parents),
        )
        if level.extra:
            torch.mul(e[:, cut:], f[:, : level.extra], out=out[:, cut:])
        return out.index_select(1, buf["position"]) if level.kind == "gather" else out
    if level.kind == "padded":
        out = (e.view(n, level.parents, level.width) * f[:, :, None]).view(n, -1)
        return out.index_select(1, buf["position"])
    return e * f.index_select(1, buf["parent_of"])


class _HXE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, targets: torch.Tensor, module: HierarchicalXELoss, mean: bool
    ) -> torch.Tensor:
        below = None  # lse of the parents of the level below (N, parents)
        vals, saved = [], []
        path = module.path_index.index_select(0, targets)  # (N, levels): y's node among the children
        for k, level in enumerate(module._levels):
            buf = module._buffers_of(level)
            if level.leaves == 0:
                x = below
            else:
                leaf = logits if level.all_leaves else logits.index_select(1, buf["leaf_ids"])
                x = leaf if below is None else torch.cat([below, leaf], dim=1)
            vals.append(x.gather(1, path[:, k : k + 1]))
            e, total, below = _group(level, x, buf)
            saved += [e, total]
        lse = below  # (N, 1): the root
        weights = module.path_weights.index_select(0, targets).to(logits.dtype)  # (N, levels)
        loss = lse.sub(torch.cat(vals, dim=1)).mul_(weights).sum(dim=1)
        ctx.save_for_backward(path, weights, *saved)
        ctx.module = module
        return reduce_output(ctx, loss, mean)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        module = ctx.module
        path, weights, *saved = ctx.saved_tensors
        n = path.shape[0]
        g = (grad / n).expand(n, 1) if ctx.mean else grad[:, None]  # (N, 1)
        weights = weights * g
        d = weights.sum(dim=1, keepdim=True)  # D(root)
        out = None
        levels = module._levels
        for k in range(len(levels) - 1, -1, -1):
            level, buf = levels[k], module._buffers_of(levels[k])
            child = _ungroup(level, saved[2 * k], d / saved[2 * k + 1], buf)  # e / T(parent) D(parent)
            child.scatter_add_(1, path[:, k : k + 1], weights[:, k : k + 1].neg())
            d = child[:, : level.inner]
            if level.leaves:
                if level.all_leaves:
                    out = child
                else:
                    if out is None:
                        out = child.new_zeros((n, module.num_classes))
                    out.index_copy_(1, buf["leaf_ids"], child[:, level.inner :])
        return out, None, None, None


class HierarchicalXELoss(ClassificationLoss):
    """HXE; `paths[k]` is [class k, its parent, ..., its root]; `alpha` in (0, 10]; `weighting` "paper"
    (exp(-alpha * height)) or "mbm_code" (exp(-alpha * depth), normalised over the tree)."""

    path_index: torch.Tensor
    path_weights: torch.Tensor

    def __init__(self, paths: list[list[str]], alpha: float = 0.1, weighting: str = "paper") -> None:
        super().__init__(len(paths))
        self.alpha = check_range("loss.alpha", alpha, 0.0, 10.0, lo_open=True)
        if weighting not in WEIGHTINGS:
            raise SpecError("loss.weighting", f"must be 'paper' or 'mbm_code', got {weighting!r}")
        self.weighting = weighting
        paths, depth, parent = _tree(paths)
        leaves = [p[0] for p in paths]
        weight = _node_weights(paths, _edge_weights(paths, depth, self.alpha, weighting))
        # levels, deepest first: the nodes at depth d (the root at 0) computed from their children at d + 1;
        # children in the order: the parents of the level below, then the leaves at depth d + 1
        self._levels: list[_Level] = []
        below: list[object] = []
        path_index, path_weights = [], []
        for d in range(max(depth[x] for x in leaves) - 1, -1, -1):
            leaf_ids = [k for k, x in enumerate(leaves) if depth[x] == d + 1]
            children = below + [leaves[k] for k in leaf_ids]
            level, buffers, below = _plan_level(f"level{d}", children, parent, leaf_ids, len(paths))
            self._levels.append(level)
            for name, values in buffers.items():
                self.register_buffer(f"{level.prefix}_{name}", torch.tensor(values, dtype=torch.long))
            index_row, weight_row = _path_row(paths, weight, children)
            path_index.append(index_row)
            path_weights.append(weight_row)
        self.register_buffer("path_index", torch.tensor(path_index, dtype=torch.long).T.contiguous())
        self.register_buffer(
            "path_weights", torch.tensor(path_weights, dtype=torch.float64).T.to(torch.float32)
        )

    def _buffers_of(self, level: _Level) -> dict[str, torch.Tensor]:
        return {
            name: getattr(self, f"{level.prefix}_{name}")
            for name in ("leaf_ids", "order", "pads", "position", "parent_of")
        }

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _HXE.apply(logits, targets, self, False)

    def batch_mean(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return _HXE.apply(logits, targets, self, True)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, alpha={self.alpha}, weighting={self.weighting!r}, "
            f"levels={len(self._levels)}"
        )


# ---------------------------------------------------------------------------------------------------------
# building the levels (HierarchicalXELoss.__init__)


def _tree(paths: list[list[str]]) -> tuple[list[list], dict[object, int], dict[object, object]]:
    """(paths, depth of every node (the root: 0), parent of every non-root node); several roots are
    joined under a virtual root `None`. SpecError unless every class is a leaf with a parent."""
    if any(len(p) < 2 for p in paths):
        raise SpecError("similarity.parents", "every class needs a parent in the hierarchy")
    if len({p[-1] for p in paths}) > 1:
        paths = [p + [None] for p in paths]  # a virtual root above all roots
    depth: dict[object, int] = {}
    parent: dict[object, object] = {}
    for p in paths:
        for l, node in enumerate(p):
            depth[node] = len(p) - 1 - l
            if l + 1 < len(p):
                parent[node] = p[l + 1]
    if {p[0] for p in paths} & set(parent.values()):
        raise SpecError("similarity.parents", "classes must be leaves of the hierarchy")
    return paths, depth, parent


def _edge_weights(
    paths: list[list], depth: dict[object, int], alpha: float, weighting: str
) -> list[list[float]]:
    """lambda[k][l]: the weight of class k's edge from its l-th node up to the next one."""
    if weighting == "paper":
        return [[math.exp(-alpha * l) for l in range(len(p) - 1)] for p in paths]
    total = math.fsum(math.exp(-alpha * d) for d in depth.values())  # every node once, the root included
    return [[math.exp(-alpha * depth[node]) / total for node in p[:-1]] for p in paths]


def _node_weights(paths: list[list], lam: list[list[float]]) -> list[dict[object, float]]:
    """W[k, node] of the telescoped sum -sum_l lam_l log(p(C_l) / p(C_l+1)) = -sum_nodes W log p(node):
    lam_0 at the leaf, lam_l - lam_(l-1) at the l-th ancestor below the root (log p(root) = 0)."""
    weight: list[dict[object, float]] = []
    for p, lk in zip(paths, lam):
        w = {p[0]: lk[0]}
        for l in range(1, len(p) - 1):
            w[p[l]] = w.get(p[l], 0.0) + lk[l] - lk[l - 1]
        weight.append(w)
    return weight


def _plan_level(
    prefix: str, children: list[object], parent: dict[object, object], leaf_ids: list[int], c: int
) -> tuple[_Level, dict[str, list[int]], list[object]]:
    """The level whose `children` are the parents of the level below, then the leaves `leaf_ids`:
    (its _Level, its index buffers by name, its parent nodes: the children of the level above)."""
    members: dict[object, list[int]] = {}  # parent -> its children's indices, by first child
    for i, x in enumerate(children):
        members.setdefault(parent[x], []).append(i)
    parents = sorted(members, key=lambda x: -len(members[x]))  # by size, then first child
    groups = [members[x] for x in parents]
    sizes = [len(gr) for gr in groups]
    kind, order, pads = _layout(groups, len(children))
    if kind == "view" and order != list(range(len(children))):
        kind = "gather"
    level = _Level(
        prefix=prefix,
        kind=kind,
        parents=len(parents),
        base=min(sizes),
        extra=sum(size > min(sizes) for size in sizes),
        width=max(sizes),
        inner=len(children) - len(leaf_ids),
        leaves=len(leaf_ids),
        all_leaves=leaf_ids == list(range(c)),
        has_padding=bool(pads),
    )
    local = {x: i for i, x in enumerate(parents)}
    buffers = {
        "leaf_ids": leaf_ids,
        "order": order,
        "pads": pads,
        "position": _positions(order, pads, len(children)),
        "parent_of": [local[parent[x]] for x in children],
    }
    return level, buffers, parents


def _layout(groups: list[list[int]], num_children: int) -> tuple[str, list[int], list[int]]:
    """How a level groups its children by parent: (kind, the children's order, the padding slots)."""
    sizes = [len(gr) for gr in groups]
    base, width = min(sizes), max(sizes)
    order: list[int] = []
    pads: list[int] = []
    if width - base <= 1:  # slot-major: the k-th child of every parent, then the extra ones
        for k in range(width):
            order += [gr[k] for gr in groups if k < len(gr)]
        return "view", order, pads
    if len(groups) * width <= 2 * num_children:
        for gr in groups:
            pads += [len(order) + i for i in range(len(gr), width)]
            order += gr + [gr[0]] * (width - len(gr))
        return "padded", order, pads
    return "scatter", order, pads


def _positions(order: list[int], pads: list[int], num_children: int) -> list[int]:
    """Where each child lies in `order` (padding slots skipped)."""
    padding = set(pads)
    position = [0] * num_children
    for i, ch in enumerate(order):
        if i not in padding:
            position[ch] = i
    return position


def _path_row(paths: list[list], weight: list[dict[object, float]], children: list[object]):
    """Per class: the position of its path's node among `children` and that node's weight."""
    index = {x: i for i, x in enumerate(children)}
    on_path = [next((x for x in p if x in index), None) for p in paths]
    return (
        [index[x] if x is not None else 0 for x in on_path],
        [w.get(x, 0.0) if x is not None else 0.0 for w, x in zip(weight, on_path)],
    )
