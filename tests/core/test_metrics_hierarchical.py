"""Hand-computed values of the hierarchical keys of core.metrics.evaluate: the LCA-height distance and
`hierarchical_distance_at_k` / `mistake_severity_at_k` (making-better-mistakes' definitions).

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_metrics_hierarchical.py -q
"""

from __future__ import annotations

import json

import pytest
import torch

from core.metrics import evaluate
from core.metrics.hierarchical import lca_heights

#        r
#      /   \
#     x     d          heights: y 1, x 2, r 3
#    / \
#   y   c
#  / \
# a   b
TREE = {"kind": "hierarchy", "parents": {"a": "y", "b": "y", "y": "x", "c": "x", "x": "r", "d": "r"}}


def test_lca_height_is_the_height_of_the_common_ancestor():
    d = lca_heights(TREE, ["a", "b", "c", "d"])
    assert d.tolist() == [
        [0, 1, 2, 3],
        [1, 0, 2, 3],
        [2, 2, 0, 3],
        [3, 3, 3, 0],
    ]
    # c and d meet at r, three levels above a and b; the longer path from c or d to r is only 2
    assert d.dtype == torch.float64


def test_lca_height_counts_only_the_dataset_classes_and_joins_separate_trees():
    spec = {"kind": "hierarchy", "parents": {"a": "x", "b": "x", "q": "w", "w": "x", "c": "y"}}
    # q (deeper, under x) is not a class of the dataset: x stays height 1; c's tree is joined above both roots
    assert lca_heights(spec, ["a", "b", "c"]).tolist() == [[0, 1, 2], [1, 0, 2], [2, 2, 0]]
    assert lca_heights(spec, ["a", "q"]).tolist() == [[0, 2], [2, 0]]
    assert lca_heights({"kind": "ordinal"}, ["a", "b"]) is None and lca_heights(None, ["a"]) is None


def test_distance_and_mistake_severity_at_1_and_5():
    parents = {"a": "y", "b": "y", "y": "x", "c": "x", "x": "r", "d": "z", "e": "z", "z": "r", "f": "r"}
    spec = {"kind": "hierarchy", "parents": parents}
    classes = ["a", "b", "c", "d", "e", "f"]
    logits = torch.tensor(
        [
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],  # truth a: top-5 a b c d e -> 0 1 2 3 3
            [4.0, 3.0, 5.0, 6.0, 2.0, 1.0],  # truth c: top-5 d c a b e -> 3 0 2 2 3
        ]
    )
    m = evaluate(logits, torch.tensor([0, 2]), None, classes, spec)
    assert m["hierarchical_distance_at_k"] == pytest.approx({"1": (0 + 3) / 2, "5": (9 / 5 + 10 / 5) / 2})
    assert m["mistake_severity_at_k"] == pytest.approx({"1": 3.0, "5": 2.0})  # only the second is a mistake
    json.dumps(m)


def test_no_mistakes_and_few_classes():
    m = evaluate(torch.eye(4) * 5, torch.arange(4), None, ["a", "b", "c", "d"], TREE)
    assert m["hierarchical_distance_at_k"] == {"1": 0.0}  # C = 4: no k = 5 (as top5_accuracy)
    assert m["mistake_severity_at_k"] == {"1": None}
    m = evaluate(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), None, ["a", "b", "c", "d"], TREE)
    assert m["hierarchical_distance_at_k"] == {"1": None} and m["mistake_severity_at_k"] == {"1": None}


def test_hierarchical_keys_only_for_hierarchy_specs():
    groups = {"kind": "groups", "groups": [["a", "b"]], "within": 0.5}
    for spec in (None, {"kind": "ordinal"}, groups):
        m = evaluate(torch.eye(4), torch.arange(4), None, ["a", "b", "c", "d"], spec)
        assert "hierarchical_distance_at_k" not in m and "mistake_severity_at_k" not in m
