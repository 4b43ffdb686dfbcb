"""Warm starts end to end over REST with a real `celery worker`: job A trains on the digits; job B starts from
A (`model.init.from_job`) on other classes, so its head is reset; A's `model.safetensors`, downloaded and
uploaded to `POST /v1/weights` with A's classes, starts job C on the same classes (the head is kept);
a pickle is refused; a source that does not fit the model fails the job as invalid, once."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from safetensors.torch import load
from storage_testlib import pickles_that_must_not_load, upload_weights
from worker_testlib import job_body

from core.storage import make_storage

pytestmark = [pytest.mark.services, pytest.mark.slow]

MODEL = {"kind": "mlp", "hidden": [32]}
FIVE = ["0", "1", "2", "3", "4"]


def _init_info(stack, job_id: str) -> dict:
    """What the engine reported about the warm start (the `init` of the job's start event)."""
    r = stack.client.get(f"/v1/jobs/{job_id}/events", headers=stack.headers)
    assert r.status_code == 200, r.text
    found = [e["data"]["init"] for e in r.json()["items"] if (e.get("data") or {}).get("init")]
    assert len(found) == 1, r.json()
    return found[0]


def _succeeded(stack, job_id: str) -> dict:
    stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=180)
    job = stack.get(job_id)
    assert job["status"] == "succeeded", (job, stack.logs())
    return job


def test_warm_starts_from_a_job_and_from_uploaded_weights(stack_factory, tmp_path):
    stack = stack_factory("postgres")
    stack.start_worker()
    job_a = stack.submit(job_body(model=MODEL, epochs=3, seed=1))
    a = _succeeded(stack, job_a)
    a_weights = stack.download(job_a, "model.safetensors")

    # B: from job A, on five of the ten classes: the backbone comes from A, the head is new
    job_b = stack.submit(
        {**job_body(model={**MODEL, "init": {"from_job": job_a}}, epochs=2, seed=2), "classes": FIVE}
    )
    b = _succeeded(stack, job_b)
    info = _init_info(stack, job_b)
    assert info["source"] == f"job:{job_a}" and info["head_reset"] is True, info
    assert info["loaded"] >= 2 and any("head" in why for why in info["skipped"].values()), info
    assert b["spec"]["model"]["init"] == {"from_job": job_a}
    assert json.loads(stack.download(job_b, "model.json"))["classes"] == FIVE

    # C: A's weights uploaded with A's classes, on the same classes: everything loads, the head too
    up = upload_weights(
        stack.client, stack.headers, a_weights, "a.safetensors", classes=json.dumps(a["classes"])
    )
    assert up.status_code == 201, up.text
    job_c = stack.submit(job_body(model={**MODEL, "init": {"weights": up.json()["id"]}}, epochs=1, seed=3))
    _succeeded(stack, job_c)
    info = _init_info(stack, job_c)
    assert info["source"] == f"weights:{up.json()['id']}" and info["head_reset"] is False, info
    a_state = load(a_weights)  # every tensor of A loaded but the standardisation of C's own data
    assert all(name.startswith("standardize.") for name in info["skipped"]), info
    assert info["loaded"] == len(a_state) - len(info["skipped"]) and info["unused"] == [], info

    # a pickle is refused, whatever its name, and never unpickled
    marker = tmp_path / "unpickled"
    for name, data in pickles_that_must_not_load(marker).items():
        r = upload_weights(stack.client, stack.headers, data, name)
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "file", r.text
    assert not marker.exists()


def test_a_warm_start_that_does_not_fit_fails_the_job_as_invalid(stack_factory):
    stack = stack_factory("postgres")
    worker = stack.start_worker()
    up = upload_weights(
        stack.client,
        stack.headers,
        _safetensors({"other.weight": torch.zeros(3, 3)}),
        "unrelated.safetensors",
    )
    assert up.status_code == 201, up.text
    job_id = stack.submit(job_body(model={**MODEL, "init": {"weights": up.json()["id"]}}, epochs=2))
    stack.wait_status(job_id, "failed", "succeeded", "cancelled", timeout=120)
    job = stack.get(job_id)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "invalid_spec" and "model.init" in job["error"]["message"], job
    assert job["attempts"] == 1 and worker.alive()
    # deleting the weights is allowed once no active job uses them
    assert stack.client.delete(f"/v1/weights/{up.json()['id']}", headers=stack.headers).status_code == 204

    # weights that were there at submission and are gone when the worker resolves them: failed, invalid
    gone = upload_weights(stack.client, stack.headers, _safetensors({"w": torch.zeros(2)})).json()["id"]
    worker.signal(signal.SIGSTOP)  # the worker must not run the job before its weights are gone
    job_id = stack.submit(job_body(model={**MODEL, "init": {"weights": gone}}, epochs=2))
    with stack.session() as s:
        from core.db.models import Weights

        key = s.get(Weights, gone).storage_key
    make_storage(stack.settings.storage_url).delete(key)
    worker.signal(signal.SIGCONT)
    stack.wait_status(job_id, "failed", "succeeded", "cancelled", timeout=120)
    job = stack.get(job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_spec", job
    assert job["error"]["message"].startswith("model.init.weights: the stored weights are missing"), job


def _safetensors(tensors: dict) -> bytes:
    from safetensors.torch import save

    return save(tensors)
