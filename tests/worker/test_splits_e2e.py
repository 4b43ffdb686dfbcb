"""End to end: jobs with a test split (`training.split`) or a `test_dataset`, through the real API and a
real `celery worker` subprocess on PostgreSQL + Redis.

The final metrics of such a job are its test rows' (`final_metrics.evaluated_on == "test"`, the
validation split's under `final_metrics.val`), and they are recomputed here from the stored model and the
stored test indices (`splits.npz`), which share no row with the training and validation indices.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from worker_testlib import job_body

pytestmark = [pytest.mark.services, pytest.mark.slow]

SPLIT = {"val": 0.2, "test": 0.2, "seed": 42}


def _npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _stored_model(stack, job_id: str, out):
    from core.artifacts import load_model_from_artifacts

    out.mkdir(parents=True)
    for name in ("model.safetensors", "model.json"):
        (out / name).write_bytes(stack.download(job_id, name))
    return load_model_from_artifacts(out)[0]


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
    return float((logits.argmax(1) == y).mean())


def _upload(stack, ds) -> str:
    buf = io.BytesIO()
    np.savez(buf, x=ds.x, y=ds.y, classes=np.array(ds.classes))
    r = stack.client.post(
        "/v1/datasets", files={"file": ("d.npz", buf.getvalue(), "application/octet-stream")},
        headers=stack.headers,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_jobs_report_test_metrics_on_rows_never_trained_on(stack_factory, tmp_path):
    from core.data import load_builtin, select_classes, subset

    stack = stack_factory("postgres")
    bad = stack.client.post("/v1/jobs", json=job_body(split={"val": 0.5, "test": 0.4}), headers=stack.headers)
    assert bad.status_code == 422, bad.text
    assert [d["field"] for d in bad.json()["error"]["details"]] == ["training.split.test"]

    digits = load_builtin("digits")
    rows = np.arange(digits.num_samples)
    train_part, test_part = subset(digits, rows[rows % 4 != 0]), subset(digits, rows[rows % 4 == 0])
    train_id, test_id = _upload(stack, train_part), _upload(stack, test_part)
    stack.start_worker()
    split_job = stack.submit(job_body(epochs=3, seed=5, split=SPLIT))
    plain_job = stack.submit(job_body(epochs=2, seed=5))
    dataset_job = stack.submit({**job_body(epochs=3, seed=5), "dataset": train_id, "test_dataset": test_id})
    for job_id in (split_job, plain_job, dataset_job):
        stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=180)

    job = stack.get(split_job)
    assert job["status"] == "succeeded", (job, stack.logs())
    final = job["final_metrics"]
    assert final["evaluated_on"] == "test" and final["val"]["count"] > 0
    splits = _npz(stack.download(split_job, "splits.npz"))
    train_rows, val_rows, test_rows = splits["train"], splits["val"], splits["test"]
    assert str(splits["test_source"]) == "split" and int(splits["seed"]) == 42
    assert not np.intersect1d(test_rows, train_rows).size and not np.intersect1d(test_rows, val_rows).size
    assert len(train_rows) + len(val_rows) + len(test_rows) == digits.num_samples
    assert final["count"] == len(test_rows) and final["val"]["count"] == len(val_rows)
    ds = select_classes(digits, job["spec"]["classes"])
    model = _stored_model(stack, split_job, tmp_path / "split")
    assert _accuracy(model, ds.x[test_rows], ds.y[test_rows]) == pytest.approx(final["accuracy"], abs=1e-9)
    assert _accuracy(model, ds.x[val_rows], ds.y[val_rows]) == pytest.approx(
        final["val"]["accuracy"], abs=1e-9
    )
    preds = _npz(stack.download(split_job, "predictions.npz"))
    assert np.array_equal(preds["test_indices"], test_rows) and np.array_equal(preds["indices"], val_rows)

    plain = stack.get(plain_job)
    assert plain["status"] == "succeeded" and plain["final_metrics"]["evaluated_on"] == "val"
    assert "val" not in plain["final_metrics"]
    assert len(_npz(stack.download(plain_job, "splits.npz"))["test"]) == 0

    job = stack.get(dataset_job)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["final_metrics"]["evaluated_on"] == "test"
    splits = _npz(stack.download(dataset_job, "splits.npz"))
    assert str(splits["test_source"]) == "test_dataset"
    assert np.array_equal(splits["test"], np.arange(test_part.num_samples))
    model = _stored_model(stack, dataset_job, tmp_path / "dataset")
    assert _accuracy(model, test_part.x, test_part.y) == pytest.approx(
        job["final_metrics"]["accuracy"], abs=1e-9
    )
