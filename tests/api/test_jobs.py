"""Jobs: creation (really in the broker), spec validation, idempotency, pagination, cancel, quotas, bounds."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.db import jobs as jobstate
from core.db.models import Job, JobEvent

SIMPLE_JOB = {"dataset": "builtin:digits", "loss": {"kind": "cross_entropy"}, "training": {"epochs": 2}}

SIMLOSS_JOB = {
    "dataset": "builtin:digits",
    "similarity": {"kind": "ordinal", "reduction_factor": 0.5},
    "loss": {"kind": "simloss"},
    "training": {"epochs": 3},
    "metadata": {"purpose": "test"},
}


def test_create_job_is_queued_and_in_the_broker(service):
    assert service.queued_messages() == 0
    r = service.client.post("/v1/jobs", json=SIMLOSS_JOB, headers=service.auth_a)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued"
    assert job["dataset"] == "builtin:digits"
    assert job["classes"] == [str(i) for i in range(10)]
    assert job["progress"] == {"epoch": 0, "epochs": 3, "fraction": 0.0, "eta_seconds": None}
    assert job["spec"]["loss"] == {"kind": "simloss"}
    assert isinstance(job["spec"]["training"]["seed"], int)
    assert job["dispatched_at"] is not None and job["error"] is None
    assert service.queued_messages() == 1

    got = service.client.get(f"/v1/jobs/{job['id']}", headers=service.auth_a).json()
    assert got["id"] == job["id"] and got["status"] == "queued"

    events = service.client.get(f"/v1/jobs/{job['id']}/events", headers=service.auth_a).json()
    assert [e["kind"] for e in events["items"]] == ["state"]
    assert events["items"][0]["data"] == {"status": "queued"}
    assert events["last_id"] == events["items"][0]["id"]


def _err(r):
    assert r.status_code == 422, r.text
    return r.json()["error"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"loss": {"kind": "no_such_loss"}}, "loss.kind"),
        ({"loss": {"kind": "simloss"}, "similarity": None}, "loss"),
        ({"classes": ["0", "1", "cat"]}, "classes"),
        ({"training": {"epochs": 6}}, "training.epochs"),
        ({"dataset": "../etc/passwd"}, "dataset"),
        ({"loss": {"kind": "cross_entropy", "label_smoothing": 2}}, "loss.label_smoothing"),
        ({"similarity": {"kind": "matrix", "values": [[1, 0.5], [0.5, 1]]}}, "similarity"),
        ({"unexpected": 1}, "unexpected"),
    ],
    ids=[
        "unknown-loss",
        "simloss-without-similarity",
        "unknown-class",
        "epochs-over-max",
        "bad-dataset-ref",
        "loss-param",
        "matrix-wrong-size",
        "extra-field",
    ],
)
def test_bad_specs_are_422_naming_the_field(make_service, patch, field):
    svc = make_service("sqlite", max_epochs=5)
    body = {**SIMLOSS_JOB, **patch}
    body = {k: v for k, v in body.items() if v is not None}
    err = _err(svc.client.post("/v1/jobs", json=body, headers=svc.auth_a))
    fields = [d["field"] for d in err["details"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), (field, err)
    assert err["message"].startswith(fields[0])
    assert svc.queued_messages() == 0
    with svc.sessionmaker() as s:
        assert s.execute(select(Job)).first() is None


def test_nan_in_similarity_values_is_422(embedded):
    body = json.dumps(
        {
            **SIMLOSS_JOB,
            "classes": ["0", "1"],
            "similarity": {"kind": "matrix", "values": [[1.0, "NAN"], [0.5, 1.0]]},
        }
    ).replace('"NAN"', "NaN")
    r = embedded.client.post(
        "/v1/jobs", content=body, headers={**embedded.auth_a, "Content-Type": "application/json"}
    )
    err = _err(r)
    assert err["details"][0]["field"].startswith("similarity.values"), err


def test_unknown_dataset_is_404_naming_it(embedded):
    r = embedded.client.post(
        "/v1/jobs",
        json={**SIMPLE_JOB, "dataset": "00000000-0000-4000-8000-000000000000"},
        headers=embedded.auth_a,
    )
    assert r.status_code == 404
    assert r.json()["error"]["details"][0]["field"] == "dataset"


def test_idempotency_key(service):
    headers = {**service.auth_a, "Idempotency-Key": "create-once-1"}
    first = service.client.post("/v1/jobs", json=SIMPLE_JOB, headers=headers)
    assert first.status_code == 201
    again = service.client.post("/v1/jobs", json=dict(reversed(list(SIMPLE_JOB.items()))), headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    different = service.client.post(
        "/v1/jobs", json={**SIMPLE_JOB, "training": {"epochs": 3}}, headers=headers
    )
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "conflict"
    # another tenant may use the same key for its own job
    other = service.client.post(
        "/v1/jobs", json=SIMPLE_JOB, headers={**service.auth_b, "Idempotency-Key": "create-once-1"}
    )
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert service.queued_messages() == 2
    too_long = service.client.post(
        "/v1/jobs", json=SIMPLE_JOB, headers={**service.auth_a, "Idempotency-Key": "k" * 201}
    )
    assert _err(too_long)["details"][0]["field"] == "Idempotency-Key"


def test_pagination_and_status_filter(service):
    ids = [service.create_job()["id"] for _ in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = service.client.get("/v1/jobs", params=params, headers=service.auth_a).json()
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert seen == list(reversed(ids))  # newest first, no duplicates, no gaps

    service.client.post(f"/v1/jobs/{ids[2]}/cancel", headers=service.auth_a)
    cancelled = service.client.get("/v1/jobs", params={"status": "cancelled"}, headers=service.auth_a).json()
    assert [j["id"] for j in cancelled["items"]] == [ids[2]]
    queued = service.client.get(
        "/v1/jobs", params={"status": "queued", "limit": 100}, headers=service.auth_a
    ).json()
    assert len(queued["items"]) == 6 and queued["next_cursor"] is None
    assert _err(service.client.get("/v1/jobs", params={"status": "bogus"}, headers=service.auth_a))
    assert _err(service.client.get("/v1/jobs", params={"limit": 101}, headers=service.auth_a))
    assert (
        _err(service.client.get("/v1/jobs", params={"cursor": "garbage!"}, headers=service.auth_a))[
            "details"
        ][0]["field"]
        == "cursor"
    )


def test_cancel_queued_job_is_terminal(service):
    job = service.create_job()
    r = service.client.post(f"/v1/jobs/{job['id']}/cancel", headers=service.auth_a)
    assert r.status_code == 202
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None
    again = service.client.post(f"/v1/jobs/{job['id']}/cancel", headers=service.auth_a)
    assert again.status_code == 409
    assert "cancelled" in again.json()["error"]["message"]
    assert again.json()["error"]["details"] == {"status": "cancelled"}
    with service.sessionmaker() as s:
        assert jobstate.claim(s, job["id"], "worker-x", 60) == jobstate.ClaimOutcome.terminal
    assert service.client.get(f"/v1/jobs/{job['id']}", headers=service.auth_a).json()["status"] == "cancelled"

    # the event stream replays the history and ends at the terminal state
    r = service.client.get(f"/v1/jobs/{job['id']}/events/stream", headers=service.auth_a)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    data = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert [d["data"]["status"] for d in data] == ["queued", "cancelled"]
    ids = [line[3:].strip() for line in r.text.splitlines() if line.startswith("id:")]
    assert ids == [str(d["id"]) for d in data]
    # Last-Event-ID resumes after the given event
    r = service.client.get(
        f"/v1/jobs/{job['id']}/events/stream", headers={**service.auth_a, "Last-Event-ID": ids[0]}
    )
    assert [json.loads(line[5:])["id"] for line in r.text.splitlines() if line.startswith("data:")] == [
        int(ids[1])
    ]


def test_cancel_running_job_sets_the_flag(embedded):
    job = embedded.create_job()
    with embedded.sessionmaker() as s:
        assert jobstate.claim(s, job["id"], "w1", 60) == jobstate.ClaimOutcome.claimed
    r = embedded.client.post(f"/v1/jobs/{job['id']}/cancel", headers=embedded.auth_a)
    assert r.status_code == 202
    assert r.json()["status"] == "running" and r.json()["cancel_requested"] is True


def test_running_job_progress_metrics_and_events(embedded):
    job = embedded.create_job({**SIMPLE_JOB, "training": {"epochs": 4}})
    with embedded.sessionmaker() as s:
        jobstate.claim(s, job["id"], "w1", 60)
        for epoch in (1, 2):
            assert jobstate.record_epoch(
                s, job["id"], "w1", epoch, {"epoch": epoch, "val": {"loss": 1.0 / epoch}}
            )
    got = embedded.client.get(f"/v1/jobs/{job['id']}", headers=embedded.auth_a).json()
    assert got["status"] == "running" and got["attempts"] == 1
    assert got["progress"]["epoch"] == 2 and got["progress"]["fraction"] == 0.5
    assert got["progress"]["eta_seconds"] is not None and got["progress"]["eta_seconds"] >= 0
    assert got["latest_metrics"]["epoch"] == 2
    metrics = embedded.client.get(f"/v1/jobs/{job['id']}/metrics", headers=embedded.auth_a).json()
    assert [m["epoch"] for m in metrics["epochs"]] == [1, 2]
    assert metrics["epochs"][1]["metrics"]["val"]["loss"] == 0.5
    events = embedded.client.get(f"/v1/jobs/{job['id']}/events", headers=embedded.auth_a).json()["items"]
    assert [e["kind"] for e in events] == ["state", "state", "epoch", "epoch"]
    after = embedded.client.get(
        f"/v1/jobs/{job['id']}/events", params={"after": events[1]["id"]}, headers=embedded.auth_a
    ).json()["items"]
    assert [e["id"] for e in after] == [events[2]["id"], events[3]["id"]]
    # a stream of a job that does not end stops at max_seconds
    r = embedded.client.get(
        f"/v1/jobs/{job['id']}/events/stream", params={"max_seconds": 0.3}, headers=embedded.auth_a
    )
    assert r.status_code == 200 and "event: timeout" in r.text and r.text.count("event: epoch") == 2


def test_quota_is_429_with_retry_after(make_service):
    svc = make_service("sqlite", max_active_jobs_per_tenant=2)
    a, _ = svc.create_job(), svc.create_job()
    r = svc.client.post("/v1/jobs", json=SIMPLE_JOB, headers=svc.auth_a)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["error"]["code"] == "rate_limited"
    svc.create_job(key=svc.key_b)  # other tenants are not affected
    svc.client.post(f"/v1/jobs/{a['id']}/cancel", headers=svc.auth_a)
    svc.create_job()  # a slot is free again


def test_json_body_over_the_bound_is_413(make_service):
    svc = make_service("sqlite", max_json_bytes=2048)
    body = {**SIMPLE_JOB, "metadata": {f"k{i}": "v" * 100 for i in range(30)}}
    r = svc.client.post("/v1/jobs", json=body, headers=svc.auth_a)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"

    def chunks():  # no Content-Length: refused while streaming
        raw = json.dumps(body).encode()
        for i in range(0, len(raw), 512):
            yield raw[i : i + 512]

    r = svc.client.post(
        "/v1/jobs", content=chunks(), headers={**svc.auth_a, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    with svc.sessionmaker() as s:
        assert s.execute(select(Job)).first() is None


def test_broker_down_keeps_the_job_queued_with_a_warning(make_service):
    svc = make_service("sqlite", broker_url="redis://127.0.0.1:1/0")
    r = svc.client.post("/v1/jobs", json=SIMPLE_JOB, headers=svc.auth_a)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "queued" and job["dispatched_at"] is None
    with svc.sessionmaker() as s:
        kinds = s.execute(
            select(JobEvent.kind).where(JobEvent.job_id == job["id"]).order_by(JobEvent.id)
        ).scalars()
        assert list(kinds) == ["state", "warning"]
        # the reconciler will find it
        assert job["id"] in jobstate.claimable_stale(s, requeue_after_seconds=60)
