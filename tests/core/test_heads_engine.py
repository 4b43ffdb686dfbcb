"""CORAL and CORN heads through the engine: `train()` reports per-class metrics and probabilities, the
job's decision rule lands in final_metrics and model.json, and the rebuilt model answers with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data import load_builtin
from core.decision_spec import ModelDecision
from core.training import TrainingSpec, TrainPlan, train


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return load_builtin("digits")


def _plan(ds, head: str, decision: dict | None) -> TrainPlan:
    return TrainPlan(
        dataset=ds,
        similarity_spec=None,
        loss_spec={"kind": head},
        model_spec={"kind": "mlp", "hidden": [64], "head": head},
        training=TrainingSpec(epochs=8, seed=3, batch_size=64, learning_rate=1e-2),
        device="cpu",
        decision=decision,
    )


# CORAL's one shared score must place ten digit shapes on a line: a poor fit for digits, still above chance
@pytest.mark.parametrize(("head", "better_than"), [("coral", 0.15), ("corn", 0.5)])
def test_ordinal_head_trains_and_reports_per_class_outputs(digits, head, better_than):
    decision = {"rule": "median", "threshold": 0.5}
    result = train(_plan(digits, head, decision))
    n_val, classes = len(result.val_indices), len(digits.classes)
    assert result.val_probs.shape == (n_val, classes)
    np.testing.assert_allclose(result.val_probs.sum(axis=1), 1.0, atol=1e-5)
    assert (result.val_probs >= 0).all()
    metrics = result.final_metrics
    assert metrics["accuracy"] > better_than  # chance is 0.1
    assert np.asarray(metrics["confusion_matrix"]).shape == (classes, classes)
    assert metrics["decision"]["rule"] == "median" and metrics["decision"]["threshold"] == 0.5
    assert result.model_json["decision"] == decision
    # train accuracy is the argmax of the class logits (of C - 1 raw outputs it would never reach class 9)
    assert result.history[-1]["train"]["accuracy"] > better_than

    decide = ModelDecision.from_model_json(result.model_json)
    x = torch.from_numpy(digits.x[result.val_indices])
    with torch.inference_mode():
        probs, pred = decide(result.model(x))
    np.testing.assert_allclose(probs.numpy(), result.val_probs, atol=1e-5)
    accuracy = float((pred.numpy() == digits.y[result.val_indices]).mean())
    assert accuracy == pytest.approx(metrics["decision"]["accuracy"], abs=1e-9)
