"""End to end on S3 storage (`SIMTRAIN_STORAGE_URL=s3://bucket/prefix`, a moto server in its own process):
a dataset uploaded over REST, a job trained by a real `celery worker` that is killed with SIGKILL once a
checkpoint is in the bucket, a second worker resuming from that checkpoint (the epochs continue, they do
not restart), and the artifacts downloaded over REST, byte for byte what the bucket holds.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from worker_testlib import FAST_FAULTS, SLOW_MODEL, job_body

from tests.s3server import make_bucket

pytestmark = [pytest.mark.services, pytest.mark.slow]


def _digits_npz() -> bytes:
    from core.data import load_builtin

    ds = load_builtin("digits")
    buf = io.BytesIO()
    np.savez(buf, x=ds.x, y=ds.y, classes=np.array(ds.classes))
    return buf.getvalue()


def _bucket(s3_server: str, url: str):
    """(a boto3 client of the test server, the bucket, the storage's key prefix in it) of `url`."""
    bucket, prefix = url[len("s3://") :].split("/", 1)
    return make_bucket(s3_server, bucket), bucket, prefix


def _bucket_keys(s3_server: str, url: str, under: str) -> list[str]:
    """The storage keys under `under` in the bucket, listed with boto3 directly."""
    client, bucket, prefix = _bucket(s3_server, url)
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{under}").get("Contents", [])
    return [o["Key"][len(prefix) + 1 :] for o in listed]


def _bucket_object(s3_server: str, url: str, key: str) -> bytes:
    client, bucket, prefix = _bucket(s3_server, url)
    return client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()


def test_a_job_on_s3_resumes_from_its_s3_checkpoint_after_sigkill(stack_factory, s3_storage_url, s3_server):
    stack = stack_factory("postgres", storage_url=s3_storage_url, **FAST_FAULTS)
    r = stack.client.post(
        "/v1/datasets", files={"file": ("digits.npz", _digits_npz())}, headers=stack.headers
    )
    assert r.status_code == 201, r.text
    dataset = r.json()["id"]
    assert _bucket_keys(s3_server, s3_storage_url, "datasets/"), "the dataset is stored in the bucket"

    w1 = stack.start_worker("w1")
    job_id = stack.submit({**job_body(model=SLOW_MODEL, batch_size=16, epochs=6, seed=5), "dataset": dataset})
    stack.wait_epoch(job_id, 2, timeout=180)
    assert stack.checkpoints(job_id), "a checkpoint is in the bucket"
    assert _bucket_keys(s3_server, s3_storage_url, f"jobs/{job_id}/checkpoints/")
    w1.kill()  # SIGKILL of the whole process group: no cleanup of any kind
    job = stack.job_row(job_id)
    assert job["status"] == "running", (job, stack.logs())
    killed_at = job["epoch"]
    assert 2 <= killed_at < 6

    stack.start_worker("w2")  # its reconciler re-sends the job once the lease has expired
    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=240)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["attempts"] == 2
    resumed = [(e.data or {}).get("resumed_from_epoch") for e in stack.events(job_id, "info")]
    assert resumed[0] is None and resumed[1] in (killed_at - 1, killed_at), resumed
    assert stack.epoch_rows(job_id) == [1, 2, 3, 4, 5, 6]  # each epoch once: continued, not restarted
    second_run = stack.running_events(job_id)[1].id
    after_resume = [e.data["epoch"] for e in stack.events(job_id, "epoch") if e.id > second_run]
    assert after_resume == list(range(resumed[1] + 1, 7)), after_resume  # from the checkpoint on
    kept = [f"jobs/{job_id}/checkpoints/ckpt-{e:06d}.pt" for e in (5, 6)]
    assert stack.checkpoints(job_id) == kept, "a succeeded job keeps its last two checkpoints"

    listed = {a["name"]: a for a in stack.artifacts(job_id)}
    assert {"model.safetensors", "model.json", "model.onnx", "metrics.json"} <= set(listed)
    for name, meta in listed.items():
        data = stack.download(job_id, name)
        assert len(data) == meta["size_bytes"] and hashlib.sha256(data).hexdigest() == meta["sha256"]
        assert _bucket_object(s3_server, s3_storage_url, f"jobs/{job_id}/artifacts/{name}") == data, name
    assert stack.get(job_id)["final_metrics"]["accuracy"] > 0.5
