"""Hand-computed values of the ordinal keys of core.metrics.evaluate (amae, mmae, off-by-one accuracy,
quadratic weighted kappa, ranked probability score, gmsec) and of per-class recall / minimum sensitivity.

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_metrics_ordinal.py -q
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from core.metrics import evaluate

CLASSES = ["0", "1", "2", "3"]
ORDINAL = {"kind": "ordinal", "reduction_factor": 0.5}
TARGETS = torch.tensor([0, 0, 1, 2, 3, 3])
PROBS = torch.tensor(
    [
        [0.7, 0.1, 0.1, 0.1],  # y 0, pred 0
        [0.3, 0.4, 0.2, 0.1],  # y 0, pred 1
        [0.1, 0.6, 0.2, 0.1],  # y 1, pred 1
        [0.4, 0.3, 0.2, 0.1],  # y 2, pred 0
        [0.1, 0.1, 0.2, 0.6],  # y 3, pred 3
        [0.2, 0.4, 0.1, 0.3],  # y 3, pred 1
    ],
    dtype=torch.float64,
)


def _metrics(spec=ORDINAL, probs=PROBS, targets=TARGETS, classes=CLASSES):
    return evaluate(probs.log(), targets, None, classes, spec)


def test_hand_computed_ordinal_values():
    m = _metrics()
    # distances |y - pred|: 0, 1, 0, 2, 0, 2
    assert m["mean_class_distance"] == pytest.approx(5 / 6)
    # per-class MAE: class 0 (0 + 1) / 2, class 1 0, class 2 2, class 3 (0 + 2) / 2
    assert m["amae"] == pytest.approx((0.5 + 0 + 2 + 1) / 4)
    assert m["mmae"] == pytest.approx(2.0)
    assert m["off_by_one_accuracy"] == pytest.approx(4 / 6)
    # sum W*O = 1 + 4 + 4 = 9; sum W*E = 102 / 6 = 17 (rows 2 1 1 2, columns 2 3 0 1)
    assert m["quadratic_weighted_kappa"] == pytest.approx(1 - 9 / 17)
    # per sample sum_k (F_p - F_y)^2: .14, .59, .11, .66, .21, .89
    assert m["ranked_probability_score"] == pytest.approx(2.6 / 6)
    assert m["per_class_recall"] == [0.5, 1.0, 0.0, 0.5]
    assert m["minimum_sensitivity"] == 0.0
    assert m["gmsec"] == pytest.approx(math.sqrt(0.5 * 0.5))
    json.dumps(m)


def test_a_class_absent_everywhere_keeps_its_place_on_the_scale():
    """Textbook AMAE: class 1 is never true nor predicted, yet 0 and 2 stay two apart (dlordinal: one)."""
    probs = torch.tensor([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1]], dtype=torch.float64)
    m = _metrics(probs=probs, targets=torch.tensor([0, 2]), classes=["0", "1", "2"])
    assert m["amae"] == 2.0 and m["mmae"] == 2.0 and m["mean_class_distance"] == 2.0
    assert m["off_by_one_accuracy"] == 0.0
    assert m["per_class_recall"] == [0.0, None, 0.0] and m["minimum_sensitivity"] == 0.0


def test_off_by_one_counts_samples_predicted_as_a_class_never_true():
    """dlordinal drops the sample predicted as 3 (never true) and answers 1.0; every sample counts here."""
    probs = torch.eye(4, dtype=torch.float64)[[3, 1, 0, 0]] * 0.9 + 0.025
    m = _metrics(probs=probs, targets=torch.tensor([0, 1, 1, 0]))
    assert m["off_by_one_accuracy"] == 0.75  # distances 3, 0, 1, 0


def test_minimum_sensitivity_and_gmsec_leave_out_classes_never_true():
    probs = torch.eye(3, dtype=torch.float64)[[0, 2, 1, 1]] * 0.9 + 0.05
    m = _metrics(probs=probs, targets=torch.tensor([0, 0, 1, 1]), classes=["0", "1", "2"])
    assert m["per_class_recall"] == [0.5, 1.0, None]
    assert m["minimum_sensitivity"] == 0.5  # dlordinal: 0 (class 2, predicted once, gets recall 0)
    assert m["gmsec"] is None  # the last class is never true: undefined (dlordinal: 0)
    m = _metrics(probs=probs[2:], targets=torch.tensor([1, 1]), classes=["0", "1", "2"])
    assert m["gmsec"] is None  # the first class is never true (dlordinal: its first present class)


def test_values_set_the_distances_and_the_rank_order():
    """Class values {a: 20, b: 0, c: 10}: rank order b, c, a; distances in value units."""
    spec = {"kind": "ordinal", "values": {"a": 20.0, "b": 0.0, "c": 10.0}}
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.1, 0.3, 0.6]], dtype=torch.float64)
    m = _metrics(spec, probs, torch.tensor([0, 0, 2]), ["a", "b", "c"])
    # preds b, a, c: distances 20, 0, 0
    assert m["mean_class_distance"] == pytest.approx(20 / 3)
    assert m["amae"] == pytest.approx((10 + 0) / 2)  # class a: (20 + 0) / 2, class c: 0
    assert m["mmae"] == pytest.approx(10.0)
    assert m["off_by_one_accuracy"] == pytest.approx(2 / 3)  # b is two ranks from a
    # rank order b, c, a; first sample's probabilities b .5, c .3, a .2, truth a (last)
    first = 0.5**2 + 0.8**2
    second = 0.1**2 + 0.4**2
    third = (0.3 - 0) ** 2 + (0.9 - 1) ** 2  # truth c: F_y = 0, 1, 1; F_p = .3, .9, 1
    assert m["ranked_probability_score"] == pytest.approx((first + second + third) / 3)
    assert m["gmsec"] is None  # b (first in rank order) is never true
    # kappa with weights d^2 in value units: rows a 2, c 1; columns a 1, b 1, c 1; O: (a,b), (a,a), (c,c)
    observed, expected = 400.0, (2 * (400 + 100) + 1 * (100 + 100)) / 3
    assert m["quadratic_weighted_kappa"] == pytest.approx(1 - observed / expected)


def test_cyclic_classes_go_round_and_leave_out_the_line_only_keys():
    spec = {"kind": "ordinal", "cyclic": True}
    classes = [str(h) for h in range(6)]
    probs = torch.full((3, 6), 0.02, dtype=torch.float64)
    probs[[0, 1, 2], [5, 3, 0]] = 0.9
    m = evaluate(probs.log(), torch.tensor([0, 0, 0]), None, classes, spec)
    # preds 5, 3, 0 for truth 0: distances 1, 3, 0 the short way; ranks likewise
    assert m["amae"] == pytest.approx(4 / 3) and m["mmae"] == pytest.approx(4 / 3)
    assert m["off_by_one_accuracy"] == pytest.approx(2 / 3)
    assert "ranked_probability_score" not in m and "gmsec" not in m
    assert [row["rule"] for row in m["decisions"]] == ["argmax", "min_expected_cost"]


def test_kappa_is_none_when_everything_is_one_class_and_perfect_otherwise():
    probs = torch.tensor([[0.9, 0.05, 0.05]] * 3, dtype=torch.float64)
    m = _metrics(probs=probs, targets=torch.tensor([0, 0, 0]), classes=["0", "1", "2"])
    assert m["quadratic_weighted_kappa"] is None and m["amae"] == 0.0
    m = _metrics(probs=torch.eye(4, dtype=torch.float64) * 0.96 + 0.01, targets=torch.arange(4))
    assert m["quadratic_weighted_kappa"] == pytest.approx(1.0) and m["gmsec"] == 1.0


def test_ordinal_keys_only_for_ordinal_specs():
    ordinal_only = {
        "mean_class_distance",
        "amae",
        "mmae",
        "off_by_one_accuracy",
        "quadratic_weighted_kappa",
        "ranked_probability_score",
        "gmsec",
    }
    groups = {"kind": "groups", "groups": [["0", "1"]], "within": 0.5}
    for spec in (None, {"kind": "identity"}, groups):
        m = _metrics(spec)
        assert not ordinal_only & set(m)
        assert m["per_class_recall"] == [0.5, 1.0, 0.0, 0.5] and m["minimum_sensitivity"] == 0.0


def test_empty_input_gives_none_for_every_ordinal_key():
    m = evaluate(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), None, CLASSES, ORDINAL)
    for key in (
        "amae",
        "mmae",
        "off_by_one_accuracy",
        "quadratic_weighted_kappa",
        "ranked_probability_score",
    ):
        assert m[key] is None
    assert m["gmsec"] is None and m["minimum_sensitivity"] is None
    assert m["per_class_recall"] == [None] * 4
    json.dumps(m)
