"""The hierarchical keys of `core.metrics.evaluate`, present only for hierarchy similarity specs, with the
definitions of making-better-mistakes (Bertinetto et al., CVPR 2020; github.com/fiveai/making-better-mistakes,
`better_mistakes/model/run_xent.py`: `ilsvrc_dist_avg/k` and `ilsvrc_dist_mistakes/avgk`).

    from core.metrics.hierarchical import lca_heights, hierarchical_metrics
    distance = lca_heights(similarity_spec, classes)      # C x C, None unless the spec is a hierarchy
    hierarchical_metrics(logits, targets, distance)

The distance between two classes is the height of their lowest common ancestor: the longest path, in
edges, from that node down to a class below it, in the tree the dataset's classes span (nodes of
`parents` above no class of the dataset play no part). It is 0 for a class and itself and at least 1
between two classes. Classes in different trees (no common ancestor) are taken as joined by one more
root above all roots: their distance is 1 + the height of the highest root.

- `hierarchical_distance_at_k`: {"1": ..., "5": ...}: mean over samples and over the k highest-scored
  classes of d(class, y).
- `mistake_severity_at_k`: the same over the samples whose top-1 class is wrong only (None without
  mistakes). `mistake_severity_at_k["1"]` is the paper's "mistake severity" (the mean LCA height of the
  top-1 mistakes); the top-level `mistake_severity` stays 1 - S.

k = 5 only when C > 5 (as `top5_accuracy`).
"""

from __future__ import annotations

from typing import Any

import torch

from core.metrics.classification import mean_or_none
from core.similarity import HierarchySimilarity, hierarchy_paths, parse_similarity_spec

__all__ = ["TOP_K", "hierarchical_metrics", "lca_heights"]

TOP_K = (1, 5)


def lca_heights(similarity_spec: Any, classes: list[str]) -> torch.Tensor | None:
    """C x C float64 heights of the lowest common ancestors; None unless the spec is a hierarchy."""
    if similarity_spec is None:
        return None
    parsed = parse_similarity_spec(similarity_spec)
    if not isinstance(parsed, HierarchySimilarity):
        return None
    paths = hierarchy_paths(parsed, classes)  # [class, parent, ..., root] per class
    height: dict[str, int] = {}
    for path in paths:
        for up, node in enumerate(path):
            height[node] = max(height.get(node, 0), up)
    ids = {node: k for k, node in enumerate(height)}
    depth = max(len(p) for p in paths)
    table = torch.full((len(classes), depth), -1, dtype=torch.long)  # root-aligned node ids
    for k, path in enumerate(paths):
        table[k, : len(path)] = torch.tensor([ids[n] for n in reversed(path)])
    other = torch.where(table < 0, torch.full_like(table, -2), table)  # padding never matches
    lca = torch.full((len(classes), len(classes)), -1, dtype=torch.long)
    still = torch.ones(len(classes), len(classes), dtype=torch.bool)
    for level in range(depth):
        still &= table[:, None, level] == other[None, :, level]
        lca = torch.where(still, table[:, None, level].expand_as(lca), lca)
    heights = torch.tensor(list(height.values()), dtype=torch.float64)
    joined = float(depth)  # 1 + the highest root's height (depth - 1)
    return torch.where(lca >= 0, heights[lca.clamp(min=0)], joined)


def hierarchical_metrics(
    logits: torch.Tensor, targets: torch.Tensor, distance: torch.Tensor
) -> dict[str, Any]:
    """`hierarchical_distance_at_k` and `mistake_severity_at_k` for k in TOP_K (k = 5 only when C > 5)."""
    c = logits.shape[1]
    ks = [k for k in TOP_K if k == 1 or c > k]
    top = logits.topk(max(ks), dim=1).indices  # sorted, highest first
    d = distance[targets[:, None], top]
    wrong = top[:, 0] != targets
    return {
        "hierarchical_distance_at_k": {str(k): mean_or_none(d[:, :k]) for k in ks},
        "mistake_severity_at_k": {str(k): mean_or_none(d[wrong, :k]) for k in ks},
    }
