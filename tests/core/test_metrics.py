"""Tests for core.metrics.evaluate against hand-computed values on tiny inputs.

Run: cd /work/main && /tmp/venv/bin/pytest tests/core/test_metrics.py -q
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from sklearn.metrics import f1_score

from core.metrics import evaluate
from core.similarity import build_similarity

CLASSES = ["a", "b", "c"]
# rows are probabilities; logits = log p, so softmax gives them back
PROBS = [
    [0.7, 0.2, 0.1],  # truth a, predicts a (conf 0.7)
    [0.1, 0.6, 0.3],  # truth c, predicts b (conf 0.6)
    [0.2, 0.3, 0.5],  # truth c, predicts c (conf 0.5)
    [0.5, 0.4, 0.1],
]  # truth b, predicts a (conf 0.5)
LOGITS = torch.tensor(PROBS).log()
TARGETS = torch.tensor([0, 2, 2, 1])
ORDINAL = {"kind": "ordinal", "reduction_factor": 0.5}


def test_hand_computed_values():
    s = build_similarity(ORDINAL, CLASSES)  # [[1, .5, .25], [.5, 1, .5], [.25, .5, 1]]
    m = evaluate(LOGITS, TARGETS, s, CLASSES, ORDINAL)
    assert m["count"] == 4
    assert m["accuracy"] == 0.5
    assert m["top2_accuracy"] == 1.0
    assert "top5_accuracy" not in m  # C = 3
    # F1: a = 2*1/(1+2) = 2/3, b = 0, c = 2*1/(2+1) = 2/3
    assert m["macro_f1"] == pytest.approx(4 / 9)
    assert m["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.3) + math.log(0.5) + math.log(0.4)) / 4)
    # 15 bins: 0.7 alone (acc 1), 0.6 alone (acc 0), the two 0.5s together (acc 0.5)
    assert m["ece"] == pytest.approx(0.25 * 0.3 + 0.25 * 0.6 + 0.5 * 0.0)
    assert m["mean_similarity"] == pytest.approx((1 + 0.5 + 1 + 0.5) / 4)
    assert m["mistake_severity"] == pytest.approx(0.5)
    assert m["mean_class_distance"] == pytest.approx((0 + 1 + 0 + 1) / 4)
    assert "group_accuracy" not in m
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 0, 0], [0, 1, 1]]
    json.dumps(m)
    assert all(type(v) in (int, float, list) for v in m.values())


def test_identity_when_similarity_is_none():
    m = evaluate(LOGITS, TARGETS, None, CLASSES)
    assert m["mean_similarity"] == m["accuracy"] == 0.5
    assert m["mistake_severity"] == 1.0
    assert "mean_class_distance" not in m and "group_accuracy" not in m


def test_group_accuracy_for_groups_and_hierarchy():
    groups = {"kind": "groups", "groups": [["a", "b"]], "within": 0.5}
    m = evaluate(LOGITS, TARGETS, build_similarity(groups, CLASSES), CLASSES, groups)
    # groups: a, b -> 0, c -> 1; (a, a) ok, (c, b) no, (c, c) ok, (b, a) ok
    assert m["group_accuracy"] == 0.75
    assert m["mistake_severity"] == pytest.approx((1.0 + 0.5) / 2)
    tree = {"kind": "hierarchy", "parents": {"a": "x", "b": "y", "c": "y"}}
    m = evaluate(LOGITS, TARGETS, build_similarity(tree, CLASSES), CLASSES, tree)
    # parents: a -> x, b, c -> y; (a, a) ok, (c, b) ok, (c, c) ok, (b, a) no
    assert m["group_accuracy"] == 0.75


def test_cyclic_class_distance_goes_the_short_way():
    classes = ["0", "1", "2", "3", "4", "5"]
    spec = {"kind": "ordinal", "cyclic": True}
    logits = torch.eye(6)[[5, 3]] * 10
    m = evaluate(logits, torch.tensor([0, 0]), None, classes, spec)
    assert m["mean_class_distance"] == pytest.approx((1 + 3) / 2)
    assert m["top5_accuracy"] == 1.0 and m["top2_accuracy"] == 0.0


def test_no_mistakes_gives_none_severity_and_perfect_scores():
    m = evaluate(torch.eye(3) * 5, torch.arange(3), None, CLASSES)
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and m["mistake_severity"] is None


def test_empty_input_returns_empty_metrics():
    m = evaluate(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), None, CLASSES, ORDINAL)
    assert m["count"] == 0 and m["accuracy"] is None and m["mean_class_distance"] is None
    assert m["confusion_matrix"] == [[0] * 3] * 3
    json.dumps(m)


def test_macro_f1_and_accuracy_agree_with_scikit_learn():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=g)
    targets = torch.randint(0, 6, (200,), generator=g)  # class 6 never true, sometimes predicted
    m = evaluate(logits, targets, None, [str(i) for i in range(7)])
    pred = logits.argmax(1)
    assert m["macro_f1"] == pytest.approx(f1_score(targets, pred, average="macro", zero_division=0))
    assert m["accuracy"] == pytest.approx((pred == targets).float().mean().item())
    assert sum(map(sum, m["confusion_matrix"])) == 200


def test_ece_against_a_naive_loop():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(300, 4, generator=g) * 2
    targets = torch.randint(0, 4, (300,), generator=g)
    p = torch.softmax(logits.double(), 1)
    conf, pred = p.max(1)
    ece = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        idx = [i for i in range(300) if lo < conf[i] <= hi]
        if idx:
            acc = sum(int(pred[i] == targets[i]) for i in idx) / len(idx)
            ece += len(idx) / 300 * abs(acc - sum(conf[i].item() for i in idx) / len(idx))
    assert evaluate(logits, targets, None, ["a", "b", "c", "d"])["ece"] == pytest.approx(ece)


def test_shape_errors():
    with pytest.raises(ValueError):
        evaluate(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), None, CLASSES)
    with pytest.raises(ValueError):
        evaluate(LOGITS, torch.tensor([0, 1, 2, 3]), None, CLASSES)
