"""Tests of core.artifacts: every file is written, the model rebuilds exactly, ONNX matches PyTorch.

/tmp/venv/bin/python -m pytest tests/core/test_artifacts.py -q
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from core.artifacts import ARTIFACT_FILES, load_model_from_artifacts, write_artifacts
from core.data import load_builtin, select_classes
from core.jsonsafe import json_safe
from core.training import TrainingSpec, TrainPlan, train

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def run(request, tmp_path_factory):
    if request.param == "mlp":
        ds = select_classes(load_builtin("digits"), ["3", "1", "4", "5"])
        model = {"kind": "mlp", "hidden": [32], "dropout": 0.1}
    else:
        ds = select_classes(load_builtin("digits-images"), ["0", "1", "2"])
        model = {"kind": "cnn", "channels": [4, 8], "hidden": [16]}
    plan = TrainPlan(
        ds, {"kind": "ordinal"}, {"kind": "simloss"}, model, TrainingSpec(epochs=2, seed=3), "cpu"
    )
    result = train(plan)
    out = tmp_path_factory.mktemp(f"artifacts-{request.param}")
    paths = write_artifacts(result, out)
    return ds, result, out, paths


def test_all_files_written(run):
    _ds, _result, out, paths = run
    assert [p.name for p in paths] == list(ARTIFACT_FILES)
    assert all(p.is_file() and p.stat().st_size > 0 and p.parent == out for p in paths)
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]


def test_rebuilt_model_reproduces_outputs_and_accuracy(run):
    ds, result, out, _ = run
    model, model_json = load_model_from_artifacts(out)
    assert model_json == json.loads(json.dumps(json_safe(result.model_json)))
    x = torch.from_numpy(ds.x[result.val_indices])
    with torch.no_grad():
        expected, got = result.model(x), model(x)
    assert torch.equal(expected, got)
    accuracy = (got.argmax(1).numpy() == ds.y[result.val_indices]).mean()
    assert accuracy == pytest.approx(result.final_metrics["accuracy"], abs=1e-12)
    assert model_json["classes"] == ds.classes


def test_onnx_matches_pytorch(run):
    ds, result, out, _ = run
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["x"] and [o.name for o in session.get_outputs()] == [
        "logits"
    ]
    for n in (1, 7, 50):  # dynamic batch axis
        x = ds.x[:n]
        (onnx_out,) = session.run(None, {"x": x})
        with torch.no_grad():
            torch_out = result.model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(onnx_out, torch_out, atol=1e-4, rtol=0)


def test_metrics_and_predictions(run):
    _ds, result, out, _ = run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stop_reason"] == "completed" and metrics["epochs_completed"] == 2
    assert metrics["final"]["accuracy"] == result.final_metrics["accuracy"]
    assert len(metrics["history"]) == 2 and "loss" in metrics["history"][0]["val"]
    assert np.array(metrics["final"]["confusion_matrix"]).shape == (len(result.model_json["classes"]),) * 2
    with np.load(out / "predictions.npz", allow_pickle=False) as z:
        assert np.array_equal(z["indices"], result.val_indices)
        assert np.array_equal(z["targets"], result.val_targets)
        assert np.array_equal(z["probs"], result.val_probs)
        assert z["classes"].tolist() == result.model_json["classes"]


def test_pngs_are_valid(run):
    _ds, _result, out, _ = run
    for name in ("curves.png", "confusion.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        with Image.open(out / name) as img:
            img.verify()
            assert img.format == "PNG"


def test_json_safe_as_the_artifacts_use_it():
    value = {"a": np.float32(1.5), "b": [float("nan"), np.int64(3)], "c": torch.tensor([1.0, float("inf")])}
    assert json_safe(value) == {"a": 1.5, "b": [None, 3], "c": [1.0, None]}
