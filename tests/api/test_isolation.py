"""Two tenants: B gets 404 (never 403) for every one of A's objects, and B's lists never show them."""

from __future__ import annotations

import io

import numpy as np

from tests.specs import SIMLOSS_JOB

JOB = SIMLOSS_JOB


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(24, dtype=np.float32).reshape(12, 2), y=np.arange(12) % 2)
    return buf.getvalue()


def test_tenant_b_cannot_see_or_touch_tenant_a(service, trained_artifacts, finish_with_artifacts):
    c = service.client
    a, b = service.auth_a, service.auth_b
    ds = c.post("/v1/datasets", files={"file": ("a.npz", _npz())}, headers=a).json()
    done = service.create_job(JOB)
    finish_with_artifacts(service, done["id"], trained_artifacts)
    queued = service.create_job(
        {**JOB, "dataset": ds["id"], "classes": None, "similarity": None, "loss": {"kind": "cross_entropy"}}
    )

    for job_id in (done["id"], queued["id"]):
        for method, path, kwargs in [
            ("GET", f"/v1/jobs/{job_id}", {}),
            ("GET", f"/v1/jobs/{job_id}/events", {}),
            ("GET", f"/v1/jobs/{job_id}/events/stream", {}),
            ("GET", f"/v1/jobs/{job_id}/metrics", {}),
            ("GET", f"/v1/jobs/{job_id}/artifacts", {}),
            ("GET", f"/v1/jobs/{job_id}/artifacts/model.onnx", {}),
            ("POST", f"/v1/jobs/{job_id}/predict", {"json": {"inputs": [[0.0] * 64]}}),
            ("POST", f"/v1/jobs/{job_id}/cancel", {}),
            ("DELETE", f"/v1/jobs/{job_id}", {}),
        ]:
            r = c.request(method, path, headers=b, **kwargs)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "not_found"
            assert job_id in r.json()["error"]["message"] or "not found" in r.json()["error"]["message"]
    for method in ("GET", "DELETE"):
        assert c.request(method, f"/v1/datasets/{ds['id']}", headers=b).status_code == 404
    # B cannot train on A's dataset either
    r = c.post("/v1/jobs", json={"dataset": ds["id"], "loss": {"kind": "cross_entropy"}}, headers=b)
    assert r.status_code == 404

    assert c.get("/v1/jobs", headers=b).json()["items"] == []
    assert c.get("/v1/jobs", params={"status": "succeeded"}, headers=b).json()["items"] == []
    assert c.get("/v1/datasets", headers=b).json()["items"] == []

    # nothing of A's changed, and A still sees everything
    assert c.get(f"/v1/jobs/{queued['id']}", headers=a).json()["status"] == "queued"
    assert c.get(f"/v1/datasets/{ds['id']}", headers=a).status_code == 200
    assert {j["id"] for j in c.get("/v1/jobs", headers=a).json()["items"]} == {done["id"], queued["id"]}
    r = c.post(f"/v1/jobs/{done['id']}/predict", json={"inputs": [[0.0] * 64]}, headers=a)
    assert r.status_code == 200
