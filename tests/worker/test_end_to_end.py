"""End to end: the real API, a real `celery worker` subprocess, the artifacts rebuilt and checked.

Runs on PostgreSQL + Redis and on the embedded default (SQLite database + kombu's SQLAlchemy transport on
SQLite, no server at all).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from worker_testlib import job_body

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_jobs_train_and_artifacts_reproduce(stack_factory, tmp_path, kind):
    stack = stack_factory(kind)
    worker = stack.start_worker()

    simloss = stack.submit(
        job_body(
            loss={"kind": "simloss"},
            similarity={"kind": "ordinal", "reduction_factor": 0.5},
            epochs=3,
            seed=11,
        )
    )
    ce = stack.submit(job_body(loss={"kind": "cross_entropy"}, epochs=3, seed=12))

    for job_id in (simloss, ce):
        stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=120)
        job = stack.get(job_id)
        assert job["status"] == "succeeded", (job, stack.logs())
        assert job["attempts"] == 1
        assert job["device"] == "cpu"
        assert job["progress"]["epoch"] == 3
        assert stack.epoch_rows(job_id) == [1, 2, 3]
        assert len(stack.running_events(job_id)) == 1
        kept = [f"jobs/{job_id}/checkpoints/ckpt-{e:06d}.pt" for e in (2, 3)]
        assert stack.checkpoints(job_id) == kept  # a succeeded job keeps the default retention: the last 2
        _check_artifacts(stack, job_id, job, tmp_path / job_id)

    assert worker.alive()
    assert stack.get(simloss)["final_metrics"] != stack.get(ce)["final_metrics"]


def _check_artifacts(stack, job_id: str, job: dict, out) -> None:
    import onnxruntime as ort

    from core.artifacts import load_model_from_artifacts
    from core.data import load_builtin, select_classes, stratified_split

    listed = {a["name"]: a for a in stack.artifacts(job_id)}
    assert {"model.safetensors", "model.json", "model.onnx", "metrics.json"} <= set(listed)
    out.mkdir(parents=True)
    for name in ("model.safetensors", "model.json", "model.onnx"):
        data = stack.download(job_id, name)
        assert len(data) == listed[name]["size_bytes"]
        assert hashlib.sha256(data).hexdigest() == listed[name]["sha256"]
        (out / name).write_bytes(data)

    # rebuilt from model.safetensors + model.json alone
    onnx_bytes = (out / "model.onnx").read_bytes()
    (out / "model.onnx").unlink()
    model, model_json = load_model_from_artifacts(out)
    spec = job["spec"]
    ds = select_classes(load_builtin("digits"), spec["classes"])
    _, val_idx = stratified_split(ds.y, spec["training"]["val_fraction"], spec["training"]["seed"])
    x_val = ds.x[val_idx]
    with torch.no_grad():
        logits = model(torch.from_numpy(x_val)).numpy()
    accuracy = float((logits.argmax(1) == ds.y[val_idx]).mean())
    assert accuracy == pytest.approx(job["final_metrics"]["accuracy"], abs=1e-9)
    assert accuracy > 0.5
    assert model_json["classes"] == spec["classes"]

    # ONNX agrees with PyTorch
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {session.get_inputs()[0].name: x_val.astype(np.float32)})
    np.testing.assert_allclose(onnx_logits, logits, rtol=1e-4, atol=1e-4)
