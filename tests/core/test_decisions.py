"""Tests for core.metrics.decisions: each decision rule on hand-made probabilities, its errors, and the
`decisions` table of core.metrics.evaluate (what the cost-aware decision alone buys a plain model).

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_decisions.py -q
"""

from __future__ import annotations

import pytest
import torch

from core.errors import SpecError
from core.metrics import DECISION_RULES, applicable_rules, decide, evaluate
from core.similarity import build_similarity

# S = [[1, .5, 0], [.5, 1, .5], [0, .5, 1]]: cost 1 - S = [[0, .5, 1], [.5, 0, .5], [1, .5, 0]]
S3 = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]])
MATRIX = {"kind": "matrix", "values": S3.tolist()}


def test_argmax_takes_the_first_of_equal_maxima():
    p = torch.tensor([[0.375, 0.25, 0.375], [0.1, 0.7, 0.2]])
    assert decide(p, "argmax").tolist() == [0, 1]


def test_min_expected_cost_by_hand():
    p = torch.tensor([[0.375, 0.25, 0.375], [0.75, 0.125, 0.125]])
    # row 0: costs .25 * .5 + .375 = .5, .375 * .5 * 2 = .375, .5 -> class 1 (argmax says 0)
    # row 1: costs .1875, .4375, .8125 -> class 0
    assert decide(p, "min_expected_cost", S3).tolist() == [1, 0]
    assert decide(p, "min_expected_cost").tolist() == decide(p, "argmax").tolist()  # S = I


def test_min_expected_cost_reads_rows_as_the_true_class():
    """Asymmetric S: predicting 1 when the truth is 0 is fine (S[0, 1] = 1), the reverse is not."""
    s = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    p = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    assert decide(p, "min_expected_cost", s).tolist() == [1, 1]


def test_expected_value_picks_the_nearest_value():
    values = torch.tensor([0.0, 1.0, 2.0])
    p = torch.tensor([[0.25, 0.25, 0.5], [0.5, 0.0, 0.5], [0.75, 0.25, 0.0]])
    # expected values 1.25, 1.0 (a class no mass is on), 0.25
    assert decide(p, "expected_value", class_values=values).tolist() == [1, 1, 0]
    # halfway between two values: the first class
    assert decide(torch.tensor([[0.5, 0.5]]), "expected_value", class_values=[0.0, 1.0]).tolist() == [0]
    # values out of class order: 10, 0, 5 -> expected 5 * .5 + 10 * .25 = 5 -> class 2
    p = torch.tensor([[0.25, 0.25, 0.5]])
    assert decide(p, "expected_value", class_values=[10.0, 0.0, 5.0]).tolist() == [2]


def test_median_and_its_threshold():
    p = torch.tensor([[0.25, 0.25, 0.5]])  # P(y > 0) = .75, P(y > 1) = .5
    assert decide(p, "median", class_values=[0, 1, 2]).tolist() == [1]  # the CDF reaches .5 at class 1
    assert decide(p, "median", class_values=[0, 1, 2], threshold=0.3).tolist() == [2]
    assert decide(p, "median", class_values=[0, 1, 2], threshold=0.6).tolist() == [1]
    assert decide(p, "median", class_values=[0, 1, 2], threshold=0.8).tolist() == [0]
    assert decide(p, "median").tolist() == [1]  # no values: class order is the rank order
    # values 2, 0, 1: rank order 1, 2, 0; probabilities in rank order .25, .5, .25 -> rank 1 -> class 2
    assert decide(p, "median", class_values=[2.0, 0.0, 1.0]).tolist() == [2]


def test_median_on_cumulative_outputs():
    greater = torch.tensor([[0.9, 0.7, 0.2], [0.4, 0.3, 0.1]])  # P(y > k), k = 0, 1, 2: four classes
    assert decide(greater, "median", cumulative=True).tolist() == [2, 0]
    assert decide(greater, "median", threshold=0.75, cumulative=True).tolist() == [1, 0]
    assert decide(greater, "median", threshold=0.1, cumulative=True).tolist() == [3, 3]
    # values 3, 0, 2, 1: rank order 1, 3, 2, 0
    assert decide(greater, "median", class_values=[3, 0, 2, 1], cumulative=True).tolist() == [2, 1]
    # the same answer as the per-class probabilities these cumulative ones come from
    probs = torch.tensor([[0.1, 0.2, 0.5, 0.2], [0.6, 0.1, 0.2, 0.1]])
    assert decide(probs, "median").tolist() == [2, 0]


def test_bad_rules_thresholds_and_shapes():
    p = torch.tensor([[0.5, 0.5]])
    with pytest.raises(SpecError) as e:
        decide(p, "mode")
    assert e.value.field == "decision"
    with pytest.raises(SpecError) as e:
        decide(p, "expected_value")
    assert e.value.field == "decision" and "ordinal" in e.value.reason
    for bad in (0, 1, 1.5, -0.1, True, "0.5"):
        with pytest.raises(SpecError) as e:
            decide(p, "median", threshold=bad)
        assert e.value.field == "threshold"
    with pytest.raises(ValueError):
        decide(p, "argmax", cumulative=True)
    with pytest.raises(ValueError):
        decide(p, "min_expected_cost", S3)
    with pytest.raises(ValueError):
        decide(p, "expected_value", class_values=[0, 1, 2])
    with pytest.raises(ValueError):
        decide(torch.tensor([0.5, 0.5]), "argmax")
    with pytest.raises(ValueError):
        decide(torch.tensor([[0.5, 0.5]]), "median", class_values=[0, 1], cumulative=True)


def test_applicable_rules():
    assert DECISION_RULES == ("argmax", "min_expected_cost", "expected_value", "median")
    assert applicable_rules() == ("argmax", "min_expected_cost")
    assert applicable_rules(torch.arange(3.0), period=3.0) == ("argmax", "min_expected_cost")
    assert applicable_rules(torch.arange(3.0)) == DECISION_RULES


def test_decision_table_by_hand():
    probs = torch.tensor([[0.375, 0.25, 0.375], [0.375, 0.25, 0.375], [0.75, 0.125, 0.125]])
    m = evaluate(probs.log(), torch.tensor([2, 0, 0]), S3, ["a", "b", "c"], MATRIX)
    rows = {row.pop("rule"): row for row in m["decisions"]}
    assert list(rows) == ["argmax", "min_expected_cost"]
    # argmax: 0, 0, 0 -> S = 0, 1, 1; min expected cost: 1, 1, 0 -> S = .5, .5, 1
    assert rows["argmax"] == {"accuracy": 2 / 3, "mean_similarity": 2 / 3, "mistake_severity": 1.0}
    assert rows["min_expected_cost"] == {"accuracy": 1 / 3, "mean_similarity": 2 / 3, "mistake_severity": 0.5}
    assert all(rows["argmax"][k] == m[k] for k in rows["argmax"])


def test_decision_table_for_ordinal_and_hierarchy_specs():
    spec = {"kind": "ordinal", "reduction_factor": 0.5}
    probs = torch.tensor([[0.4, 0.1, 0.5], [0.45, 0.1, 0.45], [0.1, 0.2, 0.7]], dtype=torch.float64)
    m = evaluate(
        probs.log(), torch.tensor([0, 1, 2]), build_similarity(spec, ["0", "1", "2"]), ["0", "1", "2"], spec
    )
    rows = {row["rule"]: row for row in m["decisions"]}
    assert list(rows) == list(DECISION_RULES)
    # median: P(y > 0) = .6, .55, .9 and P(y > 1) = .5, .45, .7 -> 1, 1, 2
    assert rows["median"]["accuracy"] == pytest.approx(2 / 3)
    assert rows["median"]["mean_class_distance"] == pytest.approx(1 / 3)
    assert rows["median"]["amae"] == pytest.approx(1 / 3)
    # expected values 1.1, 1.0, 1.6 -> 1, 1, 2; argmax 2, 0, 2 -> distances 2, 1, 0
    assert rows["expected_value"]["accuracy"] == pytest.approx(2 / 3)
    assert rows["argmax"]["mean_class_distance"] == pytest.approx(1.0) == m["mean_class_distance"]
    assert rows["argmax"]["amae"] == m["amae"]
    tree = {"kind": "hierarchy", "parents": {"a": "x", "b": "x", "c": "y"}}
    m = evaluate(probs.log(), torch.tensor([0, 1, 2]), None, ["a", "b", "c"], tree)
    assert [r["rule"] for r in m["decisions"]] == ["argmax", "min_expected_cost"]
    assert m["decisions"][0]["group_accuracy"] == m["group_accuracy"]
    assert "amae" not in m["decisions"][0]


def test_what_the_cost_aware_decision_buys_a_calibrated_model():
    """Labels drawn from the model's own probabilities: min expected cost raises the mean similarity
    (it maximises its expectation) and the median lowers the mean class distance (it minimises the
    expected absolute distance), at some cost in accuracy, which argmax maximises."""
    g = torch.Generator().manual_seed(0)
    classes = [str(k) for k in range(8)]
    spec = {"kind": "ordinal", "reduction_factor": 0.5}
    probs = torch.softmax(torch.randn(20000, 8, generator=g, dtype=torch.float64) * 0.5, dim=1)
    targets = torch.multinomial(probs, 1, generator=g).squeeze(1)
    m = evaluate(probs.log(), targets, build_similarity(spec, classes), classes, spec)
    rows = {row["rule"]: row for row in m["decisions"]}
    # seed 0: mean similarity .399 -> .410, mean class distance 2.30 (argmax) -> 1.92 (median)
    assert rows["min_expected_cost"]["mean_similarity"] > rows["argmax"]["mean_similarity"] + 0.005
    assert rows["median"]["mean_class_distance"] < rows["argmax"]["mean_class_distance"] - 0.2
    assert rows["argmax"]["accuracy"] > rows["min_expected_cost"]["accuracy"]
    assert rows["min_expected_cost"]["mistake_severity"] < rows["argmax"]["mistake_severity"]


def test_decision_threshold_reaches_the_median_row():
    spec = {"kind": "ordinal"}
    probs = torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64)
    rows = evaluate(probs.log(), torch.tensor([2]), None, ["0", "1", "2"], spec, decision_threshold=0.3)
    assert {r["rule"]: r for r in rows["decisions"]}["median"]["accuracy"] == 1.0
    with pytest.raises(SpecError):
        evaluate(probs.log(), torch.tensor([2]), None, ["0", "1", "2"], spec, decision_threshold=1.0)
