"""PostgreSQL goes away under the API and comes back: fast 503s meanwhile, nothing lost afterwards.

The API runs on a private PostgreSQL server (started by this test, never the shared one) that is stopped
with `pg_ctl stop -m fast` (connections cut, port closed) while the app keeps running, then started again.
"""

from __future__ import annotations

import time

import pytest
from hostile_testlib import timed_request

from core.db import jobs as jobstate
from core.db.models import JobStatus

JOB = {"dataset": "builtin:digits", "loss": {"kind": "cross_entropy"}, "training": {"epochs": 2}}
FAST = 5.0  # seconds: a request during the outage must answer within this


@pytest.mark.services
@pytest.mark.timeout(180)
def test_postgres_outage_is_fast_503_and_loses_nothing(make_service, private_pg):
    svc = make_service("sqlite", database_url=private_pg.url)  # embedded broker, private PostgreSQL
    c, auth = svc.client, svc.auth_a

    # jobs in every state before the outage
    ids = {
        name: svc.create_job(JOB)["id"] for name in ("queued", "cancelled", "running", "succeeded", "failed")
    }
    assert c.post(f"/v1/jobs/{ids['cancelled']}/cancel", headers=auth).status_code == 202
    with svc.sessionmaker() as s:
        for name in ("running", "succeeded", "failed"):
            assert jobstate.claim(s, ids[name], "w1", 600) == jobstate.ClaimOutcome.claimed
        assert jobstate.record_epoch(s, ids["running"], "w1", 1, {"val": {"loss": 0.5}})
        assert jobstate.finish(
            s, ids["succeeded"], "w1", JobStatus.succeeded, final_metrics={"accuracy": 0.9}
        )
        assert jobstate.finish(
            s, ids["failed"], "w1", JobStatus.failed, error_code="nan_loss", error_message="x"
        )
    before = {name: c.get(f"/v1/jobs/{job_id}", headers=auth).json() for name, job_id in ids.items()}
    events_before = {
        job_id: c.get(f"/v1/jobs/{job_id}/events", headers=auth).json()["items"] for job_id in ids.values()
    }
    assert {name: job["status"] for name, job in before.items()} == {
        "queued": "queued",
        "cancelled": "cancelled",
        "running": "running",
        "succeeded": "succeeded",
        "failed": "failed",
    }
    assert c.get("/readyz").status_code == 200

    private_pg.stop()

    requests = [
        ("GET", f"/v1/jobs/{ids['queued']}", None, {}),
        ("GET", "/v1/jobs", None, {}),
        ("POST", "/v1/jobs", JOB, {"Idempotency-Key": "during-outage"}),
        ("POST", f"/v1/jobs/{ids['queued']}/cancel", None, {}),
        ("GET", f"/v1/jobs/{ids['running']}/events", None, {}),
        ("GET", f"/v1/jobs/{ids['running']}/metrics", None, {}),
        ("GET", "/v1/datasets", None, {}),
    ]
    for _round in range(2):  # the pool must not get stuck after the first failures
        for method, path, body, headers in requests:
            r, took = timed_request(c, method, path, json=body, headers={**auth, **headers})
            assert took < FAST, (method, path, took)
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "database_unavailable", r.text
            assert int(r.headers["Retry-After"]) > 0
        r, took = timed_request(c, "GET", "/readyz")
        assert took < FAST and r.status_code == 503, (took, r.text)
        body = r.json()
        assert body["checks"]["database"].startswith("down"), body
        assert body["checks"]["broker"] == "ok", body
        assert body["error"]["details"]["down"] == ["database"], body
    # liveness and the metrics page do not need the database
    assert timed_request(c, "GET", "/healthz")[0].status_code == 200
    r, took = timed_request(c, "GET", "/metrics")
    assert r.status_code == 200 and took < FAST + 1

    private_pg.start()

    deadline = time.monotonic() + 20
    while c.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the API did not become ready after PostgreSQL came back"
        time.sleep(0.2)

    # every job is still there, unchanged; nothing was created or cancelled during the outage
    for name, job_id in ids.items():
        r = c.get(f"/v1/jobs/{job_id}", headers=auth)
        assert r.status_code == 200, r.text
        after = r.json()
        assert after["status"] == before[name]["status"], name
        assert after["progress"] == before[name]["progress"], name
        assert after["final_metrics"] == before[name]["final_metrics"], name
        assert after["error"] == before[name]["error"], name
        events = c.get(f"/v1/jobs/{job_id}/events", headers=auth).json()["items"]
        assert events == events_before[job_id], name
    listed = c.get("/v1/jobs", headers=auth).json()["items"]
    assert sorted(j["id"] for j in listed) == sorted(ids.values())

    # and it serves writes again: the request refused during the outage can be retried with its key
    r = c.post("/v1/jobs", json=JOB, headers={**auth, "Idempotency-Key": "during-outage"})
    assert r.status_code == 201, r.text
    again = c.post("/v1/jobs", json=JOB, headers={**auth, "Idempotency-Key": "during-outage"})
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    assert c.post(f"/v1/jobs/{ids['queued']}/cancel", headers=auth).json()["status"] == "cancelled"
    assert len(c.get("/v1/jobs", headers=auth).json()["items"]) == len(ids) + 1
