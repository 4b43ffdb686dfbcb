"""One delivery attempt against a real receiver on 127.0.0.1, in this process: the signature the reference
verifier accepts, retries with backoff and the same id, a bounded number of attempts, hostile receivers
that cost a bounded time, the allow-list checked again before sending, a lease that expires, and the
reconciler's pass."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from standardwebhooks.webhooks import WebhookVerificationError
from webhook_testlib import create_hook, delivery_row, emit_event, verify

from core.db.types import now as utcnow
from core.webhooks import state
from core.webhooks.deliver import deliver_once
from worker.reconcile import reconcile_deliveries


def _setup(svc, receiver, events=("dataset.*",), event="dataset.ready"):
    hook = create_hook(svc.client, svc.auth_a, receiver.url, events)
    [delivery_id] = emit_event(svc.sessionmaker, svc.tenant_a, event, {"id": "ds-1", "status": "ready"})
    return hook, delivery_id


def _deliver(svc, delivery_id, settings=None, owner="test-worker"):
    with svc.sessionmaker() as s:
        return deliver_once(s, delivery_id, owner=owner, settings=settings or svc.settings)


def test_the_signature_verifies_with_the_reference_library(hooks_service, receiver):
    hook, delivery_id = _setup(hooks_service, receiver)
    assert _deliver(hooks_service, delivery_id).outcome == "succeeded"
    [got] = receiver.requests
    assert got.headers["webhook-id"] == delivery_id and got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    body = verify(hook["secret"], got)
    assert body == delivery_row(hooks_service.sessionmaker, delivery_id)["payload"]
    assert body["type"] == "dataset.ready" and body["data"] == {"id": "ds-1", "status": "ready"}
    other = create_hook(hooks_service.client, hooks_service.auth_a, receiver.url)
    with pytest.raises(WebhookVerificationError):
        verify(other["secret"], got)  # another secret does not verify it
    row = delivery_row(hooks_service.sessionmaker, delivery_id)
    assert (row["status"], row["attempts"], row["last_status_code"], row["next_attempt_at"]) == (
        "succeeded", 1, 200, None,
    )  # fmt: skip


def test_a_500_is_retried_after_a_backoff_with_the_same_id(hooks_service, receiver):
    svc = hooks_service
    hook, delivery_id = _setup(svc, receiver)
    receiver.plan("500")
    first = _deliver(svc, delivery_id)
    assert first.outcome == "retry" and 1.25 <= first.retry_in <= 2.5  # webhook_backoff_s=2.5, jitter
    row = delivery_row(svc.sessionmaker, delivery_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 500)
    assert row["next_attempt_at"] > utcnow() and row["lease_owner"] is None
    assert _deliver(svc, delivery_id).outcome == "not_due"  # an early message sends nothing
    time.sleep(first.retry_in)
    assert _deliver(svc, delivery_id).outcome == "succeeded"
    one, two = receiver.wait_for(2)
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == delivery_id
    assert verify(hook["secret"], one) == verify(hook["secret"], two)
    listed = svc.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=svc.auth_a).json()["items"]
    [d] = listed
    assert (d["id"], d["status"], d["attempts"], d["next_attempt_at"]) == (delivery_id, "succeeded", 2, None)
    assert [a["status_code"] for a in d["attempt_log"]] == [500, 200]
    assert d["attempt_log"][0]["error"].startswith("HTTP 500") and d["attempt_log"][1]["error"] is None
    assert all(a["duration_ms"] >= 0 for a in d["attempt_log"])


def test_attempts_are_bounded(make_service, receiver):
    svc = make_service("sqlite", fetch_allow="127.0.0.1/32", webhook_max_attempts=2, webhook_backoff_s=0.01)
    _, delivery_id = _setup(svc, receiver)
    receiver.plan("500", "500", "500")
    assert _deliver(svc, delivery_id).outcome == "retry"
    time.sleep(0.05)
    assert _deliver(svc, delivery_id).outcome == "failed"
    assert _deliver(svc, delivery_id).outcome == "done"
    row = delivery_row(svc.sessionmaker, delivery_id)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 2, None)
    assert row["last_error"].startswith("HTTP 500") and len(receiver.requests) == 2


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("hang", "no answer within 1.5 s"),  # accepts, never answers
        ("drip", "no answer within 1.5 s"),  # answers a byte at a time: the total bound
        ("big", "HTTP 500: xxx"),  # a 10 MB body: 4 KiB read, the connection closed
        ("redirect", "HTTP 302: redirects are not followed"),  # a loop for a client that follows
    ],
)
def test_a_hostile_receiver_costs_a_bounded_time(hooks_service, receiver, behaviour, error):
    _, delivery_id = _setup(hooks_service, receiver)
    receiver.plan(behaviour)
    start = time.monotonic()
    assert _deliver(hooks_service, delivery_id).outcome == "retry"
    assert time.monotonic() - start < 1.5 + 1.5  # webhook_timeout_s=1.5 and the database writes
    row = delivery_row(hooks_service.sessionmaker, delivery_id)
    assert row["last_error"].startswith(error), row["last_error"]
    assert len(row["last_error"]) < 300 and row["attempt_log"][0]["duration_ms"] < 2500
    assert len(receiver.requests) == 1  # the redirect was not followed


def test_the_url_is_checked_again_before_each_attempt(hooks_service, receiver):
    _, delivery_id = _setup(hooks_service, receiver)
    closed = hooks_service.settings.model_copy(update={"fetch_allow": ()})  # the operator closed loopback
    assert _deliver(hooks_service, delivery_id, settings=closed).outcome == "retry"
    row = delivery_row(hooks_service.sessionmaker, delivery_id)
    assert row["last_error"].startswith("refused: url:") and "loopback" in row["last_error"]
    assert receiver.requests == []


def test_an_expired_lease_is_taken_over_and_the_lost_attempt_recorded(hooks_service, receiver):
    svc = hooks_service
    _, delivery_id = _setup(svc, receiver)
    with svc.sessionmaker() as s:  # a worker claims it and dies before recording anything
        outcome, _ = state.claim(s, delivery_id, "dead-worker", lease_seconds=60, max_attempts=8)
    assert outcome == state.ClaimOutcome.claimed
    assert _deliver(svc, delivery_id).outcome == "leased_elsewhere"  # its lease is live
    with svc.sessionmaker() as s:
        later = utcnow() + timedelta(seconds=61)
        outcome, target = state.claim(
            s, delivery_id, "next-worker", lease_seconds=60, max_attempts=8, now=later
        )
    assert outcome == state.ClaimOutcome.claimed and target.attempt == 2
    with svc.sessionmaker() as s:
        ok = state.Attempt(200, None, 5, utcnow())
        assert state.record_attempt(s, delivery_id, "next-worker", ok, svc.settings) is None
    row = delivery_row(svc.sessionmaker, delivery_id)
    assert row["status"] == "succeeded"
    assert [(a["attempt"], a["status_code"]) for a in row["attempt_log"]] == [(1, None), (2, 200)]
    assert row["attempt_log"][0]["error"] == state.INTERRUPTED


def test_a_delivery_out_of_attempts_after_a_lost_worker_fails(make_service, receiver):
    svc = make_service("sqlite", fetch_allow="127.0.0.1/32", webhook_max_attempts=1)
    _, delivery_id = _setup(svc, receiver)
    with svc.sessionmaker() as s:
        state.claim(s, delivery_id, "dead-worker", lease_seconds=0.01, max_attempts=1)
    time.sleep(0.05)
    assert _deliver(svc, delivery_id).outcome == "done"
    row = delivery_row(svc.sessionmaker, delivery_id)
    assert (row["status"], row["last_error"], receiver.requests) == ("failed", state.INTERRUPTED, [])


def test_the_reconciler_resends_what_is_due_and_not_in_flight(hooks_service, receiver):
    svc = hooks_service
    _, lost = _setup(svc, receiver)
    [in_flight] = emit_event(svc.sessionmaker, svc.tenant_a, "dataset.failed")
    [recent] = emit_event(svc.sessionmaker, svc.tenant_a, "dataset.ready")
    later = utcnow() + timedelta(seconds=svc.settings.requeue_after_seconds + 1)
    with svc.sessionmaker() as s:
        state.claim(s, in_flight, "busy-worker", lease_seconds=3600, max_attempts=8)
    sent: list[str] = []
    with svc.sessionmaker() as s:
        assert reconcile_deliveries(s, svc.settings, send=sent.append)["sent"] == []  # all sent just now
        report = reconcile_deliveries(s, svc.settings, send=sent.append, now=later)
        assert sorted(report["sent"]) == sorted([lost, recent]) and in_flight not in sent
        again = reconcile_deliveries(s, svc.settings, send=sent.append, now=later + timedelta(seconds=1))
        assert again["sent"] == []  # its token moved: not re-sent until requeue_after_seconds pass
