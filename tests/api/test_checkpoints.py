"""The checkpoints API on real jobs (trained in this process by `worker.runner.run_job` on the embedded
default): listing under `training.keep_checkpoints`, downloads that load with safetensors and rebuild the
checkpoint's model, tenant isolation, 404 for an epoch that is not kept, 422 for a bad retention, and a
warm start from one checkpoint (`model.init.checkpoint`) whose start event names it.

.venv/bin/pytest -q tests/api/test_checkpoints.py
"""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from core.checkpoint import job_checkpoints
from core.models.build import rebuild_model

MODEL = {"kind": "mlp", "hidden": [16]}  # with the learning rate below, the val loss rises after epoch 2
KEEP = {"best": 1, "last": 2}
JOB = {
    "dataset": "builtin:digits",
    "loss": {"kind": "cross_entropy"},
    "model": MODEL,
    "training": {"epochs": 5, "seed": 1, "batch_size": 128, "learning_rate": 0.3, "keep_checkpoints": KEEP},
}


def run(svc, body: dict, key: str | None = None) -> str:
    """Submit `body` and train it here, as a worker would; the succeeded job's id."""
    from worker.runner import RunOutcome, run_job

    job_id = svc.create_job(body, key=key)["id"]
    assert run_job(job_id, settings=svc.settings, resend=lambda _id: None) == RunOutcome.succeeded
    assert svc.client.get(f"/v1/jobs/{job_id}", headers=svc.auth_a).json()["status"] == "succeeded"
    return job_id


def history(svc, job_id: str) -> list[dict]:
    r = svc.client.get(f"/v1/jobs/{job_id}/artifacts/metrics.json", headers=svc.auth_a)
    assert r.status_code == 200, r.text
    return r.json()["history"]


def start_event(svc, job_id: str) -> dict:
    r = svc.client.get(f"/v1/jobs/{job_id}/events", headers=svc.auth_a)
    found = [e["data"] for e in r.json()["items"] if "num_train" in (e.get("data") or {})]
    assert len(found) == 1, r.json()
    return found[0]


def predictions(model_json: dict, tensors: dict, rows: np.ndarray) -> torch.Tensor:
    model = rebuild_model(model_json, tensors).eval()
    with torch.no_grad():
        return model(torch.from_numpy(rows))


def test_listing_and_downloads_of_kept_checkpoints(embedded):
    svc = embedded
    job_id = run(svc, JOB)
    losses = {h["epoch"]: h["val"]["loss"] for h in history(svc, job_id)}
    best = min(losses, key=lambda e: (losses[e], e))
    assert best < 4, losses  # the high learning rate overshoots: the best epoch is not one of the last two
    r = svc.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=svc.auth_a)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["epoch"] for i in items] == sorted({4, 5, best}, reverse=True)  # newest first
    steps_per_epoch = -(-start_event(svc, job_id)["num_train"] // 128)
    for item in items:
        epoch = item["epoch"]
        assert item["step"] == epoch * steps_per_epoch
        assert item["metrics"]["val_loss"] == pytest.approx(losses[epoch])
        reasons = {why for why, chosen in (("best", epoch == best), ("last", epoch >= 4)) if chosen}
        assert set(item["kept_as"]) == reasons, item
        assert item["size_bytes"] > 0 and item["created_at"].endswith("Z")

    artifacts = f"/v1/jobs/{job_id}/artifacts"
    final_json = json.loads(svc.client.get(f"{artifacts}/model.json", headers=svc.auth_a).content)
    final_bytes = svc.client.get(f"{artifacts}/model.safetensors", headers=svc.auth_a).content
    final_weights = load_safetensors(final_bytes)
    from core.data import load_builtin

    rows = load_builtin("digits").x[:64]
    for item in items:
        epoch = item["epoch"]
        base = f"/v1/jobs/{job_id}/checkpoints/{epoch}"
        r = svc.client.get(f"{base}/model.safetensors", headers=svc.auth_a)
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream", r.text
        tensors = load_safetensors(r.content)
        again = svc.client.get(f"{base}/model.safetensors", headers=svc.auth_a)
        assert again.content == r.content and again.headers["etag"] == r.headers["etag"]  # the same bytes
        described = json.loads(svc.client.get(f"{base}/model.json", headers=svc.auth_a).content)
        assert described["checkpoint"]["epoch"] == epoch and described["format"] == "simtrain.model"
        assert described["checkpoint"]["metrics"] == item["metrics"]
        assert described["classes"] == final_json["classes"]
        _meta, state = job_checkpoints(svc.storage, job_id).load(epoch)  # what the worker saved
        assert set(tensors) == set(state["model"])
        want = predictions(described, state["model"], rows)
        assert torch.equal(predictions(described, tensors, rows), want)
        if epoch == best:  # the job's final model is its best epoch's weights
            assert all(torch.equal(tensors[k], final_weights[k]) for k in final_weights)
        if epoch == 5:  # the last epoch's description is the job's own model.json
            assert {k: v for k, v in described.items() if k != "checkpoint"} == final_json


def test_another_tenant_and_epochs_that_are_not_kept_are_404(embedded):
    svc = embedded
    job_id = run(svc, {**JOB, "training": {**JOB["training"], "epochs": 3, "keep_checkpoints": {"last": 1}}})
    listed = svc.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=svc.auth_a).json()["items"]
    kept = [item["epoch"] for item in listed]
    assert kept == [3]
    for path in ("checkpoints", "checkpoints/3/model.safetensors", "checkpoints/3/model.json"):
        r = svc.client.get(f"/v1/jobs/{job_id}/{path}", headers=svc.auth_b)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (path, r.text)
        assert svc.client.get(f"/v1/jobs/{job_id}/{path}", headers=svc.auth_a).status_code == 200
    for epoch in (1, 2, 999):
        for name in ("model.safetensors", "model.json"):
            r = svc.client.get(f"/v1/jobs/{job_id}/checkpoints/{epoch}/{name}", headers=svc.auth_a)
            assert r.status_code == 404, r.text
            assert f"keeps no checkpoint of epoch {epoch}" in r.json()["error"]["message"]
    r = svc.client.get(f"/v1/jobs/{job_id}/checkpoints/abc/model.json", headers=svc.auth_a)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "epoch", r.text
    r = svc.client.get(f"/v1/jobs/{uuid.uuid4()}/checkpoints", headers=svc.auth_a)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("keep", "field"),
    [
        ({"best": 11}, "training.keep_checkpoints.best"),
        ({"best": -1}, "training.keep_checkpoints.best"),
        ({"best": "1"}, "training.keep_checkpoints.best"),
        ({"last": 0}, "training.keep_checkpoints.last"),
        ({"last": 11}, "training.keep_checkpoints.last"),
        ({"last": 1.5}, "training.keep_checkpoints.last"),
        ({"newest": 1}, "training.keep_checkpoints.newest"),
        (3, "training.keep_checkpoints"),
    ],
)
def test_a_bad_keep_checkpoints_is_422_naming_the_field(embedded, keep, field):
    body = {**JOB, "training": {**JOB["training"], "keep_checkpoints": keep}}
    r = embedded.client.post("/v1/jobs", json=body, headers=embedded.auth_a)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == field, r.json()


def test_warm_start_from_a_kept_checkpoint(embedded):
    svc = embedded
    source = run(svc, {**JOB, "training": {**JOB["training"], "epochs": 3, "keep_checkpoints": {"last": 2}}})
    body = {**JOB, "model": {**MODEL, "init": {"from_job": source, "checkpoint": 2}}}
    body["training"] = {**JOB["training"], "epochs": 2, "seed": 2}
    job_id = run(svc, body)
    init = start_event(svc, job_id)["init"]
    assert init["source"] == f"job:{source}/checkpoints/2" and init["head_reset"] is False, init
    _meta, state = job_checkpoints(svc.storage, source).load(2)
    assert all(name.startswith("standardize.") for name in init["skipped"]), init
    assert init["loaded"] == len(state["model"]) - len(init["skipped"]) and init["unused"] == [], init
    got = svc.client.get(f"/v1/jobs/{job_id}", headers=svc.auth_a).json()
    assert got["spec"]["model"]["init"] == {"from_job": source, "checkpoint": 2}

    queued = svc.create_job(JOB)["id"]
    refused = [
        ({"from_job": source, "checkpoint": 1}, svc.key_a, "model.init.checkpoint", "keeps no checkpoint"),
        ({"from_job": source, "checkpoint": 0}, svc.key_a, "model.init.checkpoint", "greater than"),
        ({"weights": source, "checkpoint": 2}, svc.key_a, "model.init.checkpoint", "needs from_job"),
        ({"from_job": source, "checkpoint": 2}, svc.key_b, "model.init.from_job", "no job"),  # not B's
        ({"from_job": queued, "checkpoint": 2}, svc.key_a, "model.init.from_job", "is queued"),
    ]
    for init_spec, key, field, says in refused:
        r = svc.client.post(
            "/v1/jobs",
            json={**JOB, "model": {**MODEL, "init": init_spec}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 422, (init_spec, r.text)
        detail = r.json()["error"]["details"][0]
        assert detail["field"] == field and says in r.json()["error"]["message"], (init_spec, r.json())
