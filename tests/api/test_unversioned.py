"""The unversioned paths answer 308 to their /v1 twins (api/routes/unversioned.py): over real HTTP a
followed POST keeps its method and body, the query string is kept, and the OpenAPI document lists every
twin with its 308."""

from __future__ import annotations

import httpx

from tests.live_server import live_server
from tests.specs import SIMLOSS_JOB

PREFIXES = ("/jobs", "/datasets", "/comparisons", "/similarity")


def test_post_jobs_follows_the_308_with_its_body_over_real_http(embedded):
    headers = {**embedded.auth_a, "Idempotency-Key": "unversioned-1"}
    with live_server(embedded.app) as base, httpx.Client(base_url=base, timeout=30) as client:
        first = client.post("/jobs", json=SIMLOSS_JOB, headers=headers)
        assert first.status_code == 308 and first.headers["location"] == "/v1/jobs"
        r = client.post("/jobs", json=SIMLOSS_JOB, headers=headers, follow_redirects=True)
        assert [h.status_code for h in r.history] == [308]
        assert r.request.method == "POST" and r.request.url.path == "/v1/jobs"
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["spec"]["loss"]["kind"] == "simloss" and job["status"] == "queued"
        # the same key and body again, through the redirect: the replay of that job
        again = client.post("/jobs", json=SIMLOSS_JOB, headers=headers, follow_redirects=True)
        assert again.status_code == 200 and again.json()["id"] == job["id"]

        got = client.get(f"/jobs/{job['id']}", headers=embedded.auth_a, follow_redirects=True)
        assert got.status_code == 200 and got.json()["id"] == job["id"]
        listed = client.get("/jobs", params={"limit": 1, "status": "queued"}, headers=embedded.auth_a)
        assert listed.status_code == 308
        assert listed.headers["location"] == "/v1/jobs?limit=1&status=queued"
        cancel = client.post(f"/jobs/{job['id']}/cancel", headers=embedded.auth_a, follow_redirects=True)
        assert cancel.status_code == 202 and cancel.json()["status"] == "cancelled"


def test_every_prefix_redirects_and_the_v1_route_still_checks(embedded):
    c = embedded.client
    for path in ("/datasets", "/datasets/builtin", "/comparisons", "/jobs/x/events?after=3"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 308 and r.headers["location"] == "/v1" + path, (path, r.headers)
    r = c.post(
        "/similarity/preview",
        json={"classes": ["a", "b", "c"], "similarity": {"kind": "ordinal"}},
        headers=embedded.auth_a,
    )
    assert r.status_code == 200 and len(r.json()["matrix"]) == 3 and r.history[0].status_code == 308
    # the redirect checks nothing; the /v1 route it leads to does
    assert c.post("/jobs", json=SIMLOSS_JOB).status_code == 401
    assert c.post("/jobs", json={"dataset": 1}, headers=embedded.auth_a).status_code == 422
    assert c.get("/v1/jobs", headers=embedded.auth_a).json()["items"] == []
    # other paths are not redirected
    assert c.get("/healthz", follow_redirects=False).status_code == 200
    assert c.get("/nothing", follow_redirects=False).status_code == 404


def test_the_openapi_document_lists_each_twin_with_its_308(embedded):
    doc = embedded.client.get("/openapi.json").json()
    paths = doc["paths"]
    versioned = [p for p in paths if p.startswith(tuple("/v1" + x for x in PREFIXES))]
    assert len(versioned) >= 15
    for v1 in versioned:
        twin = paths.get(v1[len("/v1") :])
        assert twin is not None, f"no unversioned twin of {v1}"
        assert set(twin) == set(paths[v1]), v1
        for method, op in twin.items():
            assert set(op["responses"]) <= {"308", "404"} and "308" in op["responses"], (v1, method)
            assert "Location" in op["responses"]["308"]["headers"]
            assert v1 in op["responses"]["308"]["description"]
            names = {p["name"] for p in op.get("parameters", [])}
            assert names == {p["name"] for p in paths[v1][method].get("parameters", []) if p["in"] == "path"}
            assert "requestBody" not in op and "security" not in op
    unversioned = {p for p in paths if not p.startswith(("/v1/", "/healthz", "/readyz", "/metrics"))}
    assert unversioned == {v[len("/v1") :] for v in versioned}
