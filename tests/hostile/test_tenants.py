"""Two tenants, beyond tests/api/test_isolation.py and tests/api/test_auth.py.

- B's 404 for A's object is the same 404 as for an id that does not exist (no existence oracle), for
  jobs and every sub-resource, datasets and comparisons; also with A's id disguised (case, padding,
  wildcards), with `after` / `Last-Event-ID`, and with a spoofed tenant header.
- B cannot build a comparison on A's dataset; B's lists never show A's comparisons; A's pagination cursor
  shows B nothing of A's.
- No key, a wrong key, a malformed header and a revoked key are 401 on the routes test_auth.py does not
  list (comparisons, similarity preview); revoking one key of a tenant leaves its other keys working.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest

from core.auth import create_api_key, revoke_api_key
from tests.specs import SIMLOSS_JOB

JOB = SIMLOSS_JOB
COMPARISON = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "similarity": {"kind": "ordinal"},
    "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
    "seeds": 1,
    "training": {"epochs": 1},
}


def _npz(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(24, dtype=np.float32).reshape(12, 2) + seed, y=np.arange(12) % 2)
    return buf.getvalue()


def _job_routes(job_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/v1/jobs/{job_id}", {}),
        ("GET", f"/v1/jobs/{job_id}/events?after=0", {}),
        ("GET", f"/v1/jobs/{job_id}/events/stream?max_seconds=1", {"headers": {"Last-Event-ID": "0"}}),
        ("GET", f"/v1/jobs/{job_id}/metrics", {}),
        ("GET", f"/v1/jobs/{job_id}/artifacts", {}),
        ("GET", f"/v1/jobs/{job_id}/artifacts/model.onnx", {}),
        ("POST", f"/v1/jobs/{job_id}/predict", {"json": {"inputs": [[0.0] * 64]}}),
        ("POST", f"/v1/jobs/{job_id}/cancel", {}),
    ]


def _comparison_routes(comp_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/v1/comparisons/{comp_id}", {}),
        ("GET", f"/v1/comparisons/{comp_id}/report", {}),
        ("GET", f"/v1/comparisons/{comp_id}/report?download=1", {}),
        ("POST", f"/v1/comparisons/{comp_id}/cancel", {}),
    ]


def _dataset_routes(ds_id: str) -> list[tuple[str, str, dict]]:
    return [("GET", f"/v1/datasets/{ds_id}", {}), ("DELETE", f"/v1/datasets/{ds_id}", {})]


def _call(c, auth, method, path, kwargs):
    headers = {**auth, **kwargs.get("headers", {})}
    return c.request(method, path, headers=headers, **{k: v for k, v in kwargs.items() if k != "headers"})


def test_other_tenants_objects_are_indistinguishable_from_missing_ones(
    service, trained_artifacts, finish_with_artifacts
):
    c, a, b = service.client, service.auth_a, service.auth_b
    ds = c.post("/v1/datasets", files={"file": ("a.npz", _npz())}, headers=a).json()
    job = service.create_job(JOB)
    finish_with_artifacts(service, job["id"], trained_artifacts)
    comp = c.post("/v1/comparisons", json=COMPARISON, headers=a)
    assert comp.status_code == 201, comp.text
    comp = comp.json()
    missing = str(uuid.uuid4())

    routes = [
        (_job_routes(job["id"]), _job_routes(missing), job["id"]),
        (_comparison_routes(comp["id"]), _comparison_routes(missing), comp["id"]),
        (_dataset_routes(ds["id"]), _dataset_routes(missing), ds["id"]),
    ]
    for theirs, nobodys, real_id in routes:
        for (method, path, kwargs), (_, missing_path, missing_kwargs) in zip(theirs, nobodys, strict=True):
            r = _call(c, b, method, path, kwargs)
            m = _call(c, b, method, missing_path, missing_kwargs)
            assert r.status_code == m.status_code == 404, (method, path, r.status_code, r.text)
            # the same answer as for an id nobody has, the id aside
            assert r.json()["error"]["code"] == m.json()["error"]["code"] == "not_found"
            assert r.json()["error"]["message"].replace(real_id, "ID") == m.json()["error"][
                "message"
            ].replace(missing, "ID"), (path, r.text, m.text)
            assert r.json()["error"]["details"] == m.json()["error"]["details"]

    # disguised ids and spoofed tenant headers
    for disguised in (job["id"].upper(), f" {job['id']}", f"{job['id']} ", "%", job["id"][:8] + "%", "*"):
        r = c.get(f"/v1/jobs/{disguised}", headers=b)
        assert r.status_code == 404, (disguised, r.text)
    spoof = {**b, "X-Tenant-Id": service.tenant_a, "X-Forwarded-User": "tenant-a"}
    assert c.get(f"/v1/jobs/{job['id']}", headers=spoof).status_code == 404
    assert c.get("/v1/jobs", headers=spoof).json()["items"] == []

    # B cannot build a comparison on A's dataset, and sees none of A's comparisons
    r = c.post("/v1/comparisons", json={**COMPARISON, "dataset": ds["id"], "classes": None}, headers=b)
    assert r.status_code == 404, r.text
    mine = c.post("/v1/comparisons", json=COMPARISON, headers=b).json()
    assert [x["id"] for x in c.get("/v1/comparisons", headers=b).json()["items"]] == [mine["id"]]
    assert (
        c.get("/v1/comparisons", params={"status": "running"}, headers=b).json()["items"][0]["id"]
        == mine["id"]
    )
    assert comp["id"] not in str(c.get("/v1/jobs", headers=b).json())

    # A's cursor shows B nothing of A's
    for _ in range(3):
        service.create_job(JOB)
    page = c.get("/v1/jobs", params={"limit": 1}, headers=a).json()
    assert page["next_cursor"]
    theirs = c.get("/v1/jobs", params={"cursor": page["next_cursor"]}, headers=b).json()["items"]
    a_ids = {j["id"] for j in c.get("/v1/jobs", params={"limit": 100}, headers=a).json()["items"]}
    assert not a_ids & {j["id"] for j in theirs}
    c.post("/v1/datasets", files={"file": ("b.npz", _npz(seed=1))}, headers=a)
    ds_page = c.get("/v1/datasets", params={"limit": 1}, headers=a).json()
    assert ds_page["next_cursor"]
    assert c.get("/v1/datasets", params={"cursor": ds_page["next_cursor"]}, headers=b).json()["items"] == []

    # and nothing of A's changed
    assert c.get(f"/v1/jobs/{job['id']}", headers=a).json()["status"] == "succeeded"
    assert c.get(f"/v1/comparisons/{comp['id']}", headers=a).json()["status"] == "running"
    assert c.get(f"/v1/datasets/{ds['id']}", headers=a).status_code == 200


UNLISTED_ROUTES = [
    ("GET", "/v1/comparisons", None),
    ("POST", "/v1/comparisons", COMPARISON),
    ("GET", "/v1/comparisons/x", None),
    ("POST", "/v1/comparisons/x/cancel", None),
    ("GET", "/v1/comparisons/x/report", None),
    ("POST", "/v1/similarity/preview", {"classes": ["a", "b"], "similarity": {"kind": "identity"}}),
    ("GET", "/v1/similarity/preview?classes=a,b&similarity=%7B%22kind%22%3A%22identity%22%7D", None),
    ("POST", "/v1/similarity/preview.png", {"classes": ["a", "b"], "similarity": {"kind": "identity"}}),
    ("GET", "/v1/similarity/preview.png?classes=a,b&similarity=%7B%22kind%22%3A%22identity%22%7D", None),
]


def _assert_401(r):
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path", "body"), UNLISTED_ROUTES, ids=[f"{m} {p[:40]}" for m, p, _ in UNLISTED_ROUTES]
)
def test_keys_on_comparison_and_similarity_routes(embedded, method, path, body):
    c = embedded.client
    with embedded.sessionmaker() as s:
        spare = create_api_key(s, "tenant-a")  # a second key of tenant A, revoked below
        assert revoke_api_key(s, spare)
    for headers in (
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer st_" + "0" * 40},
        {"Authorization": f"Token {embedded.key_a}"},
        {"Authorization": f"Bearer {embedded.key_a}x"},
        {"Authorization": f"Bearer {embedded.key_a}, Bearer {embedded.key_b}"},
        {"Authorization": f"Bearer {spare}"},
    ):
        _assert_401(c.request(method, path, json=body, headers=headers))
    ok = c.request(method, path, json=body, headers=embedded.auth_a)
    assert ok.status_code != 401, ok.text


def test_revoking_one_key_keeps_the_tenants_other_keys_and_data(service):
    c = service.client
    job = service.create_job(JOB)
    with service.sessionmaker() as s:
        second = create_api_key(s, "tenant-a")
        assert revoke_api_key(s, service.key_a)
    _assert_401(c.get(f"/v1/jobs/{job['id']}", headers=service.auth_a))
    _assert_401(c.post(f"/v1/jobs/{job['id']}/cancel", headers=service.auth_a))
    r = c.get(f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {second}"})
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert c.get(f"/v1/jobs/{job['id']}", headers=service.auth_b).status_code == 404
