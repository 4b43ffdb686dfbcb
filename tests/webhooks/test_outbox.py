"""The transactional outbox: a job's terminal transition writes one delivery per matching webhook of the
tenant in its own transaction (none on rollback), and the delivery task is sent only after the commit."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from webhook_testlib import create_hook

from core.db import jobs as jobstate
from core.db.models import JobStatus, WebhookDelivery
from core.webhooks import EVENT_TYPES, emit, matches, validate_patterns

URL = "http://127.0.0.1:8080/hook"


def _deliveries(svc, webhook_id: str | None = None) -> list[WebhookDelivery]:
    with svc.sessionmaker() as s:
        q = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        if webhook_id:
            q = q.where(WebhookDelivery.webhook_id == webhook_id)
        return list(s.execute(q).scalars())


def _hooks(svc) -> dict[str, dict]:
    return {
        "all_jobs": create_hook(svc.client, svc.auth_a, URL, ["job.*"]),
        "failures": create_hook(svc.client, svc.auth_a, URL, ["job.failed", "dataset.failed"]),
        "datasets": create_hook(svc.client, svc.auth_a, URL, ["dataset.*"]),
        "other_tenant": create_hook(svc.client, svc.auth_b, URL, ["*"]),
    }


def test_a_succeeded_job_writes_one_delivery_per_matching_webhook(hooks_service):
    svc = hooks_service
    hooks = _hooks(svc)
    job_id = svc.create_job()["id"]
    before = svc.queued_messages()
    with svc.sessionmaker() as s:
        assert jobstate.claim(s, job_id, "test-worker", 60) == jobstate.ClaimOutcome.claimed
        metrics = {"accuracy": 0.9, "loss": 0.25, "confusion_matrix": [[3, 1], [0, 4]], "bad": float("nan")}
        assert jobstate.finish(s, job_id, "test-worker", JobStatus.succeeded, final_metrics=metrics)
    rows = _deliveries(svc)
    assert [r.webhook_id for r in rows] == [hooks["all_jobs"]["id"]]
    row = rows[0]
    assert row.id.startswith("msg_") and row.event_type == "job.succeeded" and row.status == "pending"
    body = row.payload
    assert body["type"] == "job.succeeded" and body["timestamp"].endswith("Z")
    data = body["data"]
    assert (data["id"], data["status"], data["error"]) == (job_id, "succeeded", None)
    assert data["metrics"] == {"accuracy": 0.9, "loss": 0.25}
    assert data["finished_at"] and data["started_at"] and data["created_at"]
    assert svc.queued_messages() == before + 1  # its task, sent after the commit


def test_failed_and_cancelled_jobs_carry_their_state(hooks_service):
    svc = hooks_service
    hooks = _hooks(svc)
    failed = svc.create_job()["id"]
    with svc.sessionmaker() as s:
        jobstate.claim(s, failed, "w", 60)
        jobstate.finish(s, failed, "w", JobStatus.failed, error_code="nan_loss", error_message="loss is NaN")
    cancelled = svc.create_job()["id"]
    assert svc.client.post(f"/v1/jobs/{cancelled}/cancel", headers=svc.auth_a).json()["status"] == "cancelled"
    got = {(r.webhook_id, r.event_type, r.payload["data"]["id"]) for r in _deliveries(svc)}
    assert got == {
        (hooks["all_jobs"]["id"], "job.failed", failed),
        (hooks["failures"]["id"], "job.failed", failed),
        (hooks["all_jobs"]["id"], "job.cancelled", cancelled),
    }
    failure = _deliveries(svc, hooks["failures"]["id"])[0].payload["data"]
    assert (
        failure["error"] == {"code": "nan_loss", "message": "loss is NaN"} and failure["status"] == "failed"
    )


def test_a_rolled_back_transition_leaves_no_delivery_and_sends_nothing(hooks_service):
    svc = hooks_service
    _hooks(svc)
    job_id = svc.create_job()["id"]
    before = svc.queued_messages()
    with svc.sessionmaker() as s:
        assert jobstate.claim(s, job_id, "w", 60) == jobstate.ClaimOutcome.claimed
        emit(s, svc.tenant_a, "dataset.ready", {"id": "d1"})
        s.rollback()
        assert jobstate.finish(s, job_id, "another-worker", JobStatus.succeeded) is False  # not its lease
    assert _deliveries(svc) == []
    assert svc.queued_messages() == before


def test_emit_reaches_only_the_tenants_matching_webhooks(hooks_service):
    svc = hooks_service
    hooks = _hooks(svc)
    with svc.sessionmaker() as s:
        ids = emit(s, svc.tenant_a, "dataset.failed", {"id": "d1", "error": {"code": "x"}})
        s.commit()
    rows = {r.id: r.webhook_id for r in _deliveries(svc)}
    assert set(rows) == set(ids) and len(ids) == 2
    assert set(rows.values()) == {hooks["failures"]["id"], hooks["datasets"]["id"]}
    with svc.sessionmaker() as s, pytest.raises(ValueError, match="unknown webhook event"):
        emit(s, svc.tenant_a, "job.started", {})


def test_patterns_name_known_events_only():
    assert validate_patterns([" job.* ", "job.*", "dataset.ready"]) == ["job.*", "dataset.ready"]
    assert matches(["comparison.*"], "comparison.partial") and not matches(["comparison.*"], "job.failed")
    assert all(matches(["*"], e) for e in EVENT_TYPES)
    for bad in ("job.started", "foo.*", "job", "*.failed", ""):
        with pytest.raises(ValueError, match="unknown event"):
            validate_patterns([bad])
