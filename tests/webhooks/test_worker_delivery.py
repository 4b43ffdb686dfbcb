"""Deliveries made by real `celery worker` processes to a real receiver on 127.0.0.1: a job's end signed
(verified by the reference library) and retried after a 500 on the embedded default, and a worker killed
mid-delivery on PostgreSQL + Redis, after which another worker sends it again with the same id."""

from __future__ import annotations

import pytest
from webhook_testlib import create_hook, delivery_row, verify
from worker_testlib import FAST_FAULTS, job_body

pytestmark = pytest.mark.slow

LOOPBACK = "127.0.0.1/32"


def _deliveries(stack, hook_id: str) -> list[dict]:
    r = stack.client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=stack.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_a_finished_job_is_delivered_signed_and_retried_after_a_500(stack_factory, receiver):
    stack = stack_factory("sqlite", fetch_allow=LOOPBACK, webhook_backoff_s=0.3)
    hook = create_hook(stack.client, stack.headers, receiver.url, ["job.succeeded", "job.failed"])
    ignored = create_hook(stack.client, stack.headers, receiver.url + "/datasets", ["dataset.*"])
    receiver.plan("500", "ok")
    stack.start_worker()
    job_id = stack.submit(job_body(epochs=1))
    stack.wait_status(job_id, "succeeded")
    first, second = receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    body = verify(hook["secret"], second)
    assert verify(hook["secret"], first) == body
    assert body["type"] == "job.succeeded"
    assert (body["data"]["id"], body["data"]["status"], body["data"]["error"]) == (job_id, "succeeded", None)
    assert 0 <= body["data"]["metrics"]["accuracy"] <= 1 and body["data"]["finished_at"]
    stack.wait_for(job_id, lambda _: _deliveries(stack, hook["id"])[0]["status"] == "succeeded", "delivered")
    [d] = _deliveries(stack, hook["id"])
    assert (d["id"], d["attempts"]) == (first.headers["webhook-id"], 2)
    assert [a["status_code"] for a in d["attempt_log"]] == [500, 200]
    assert _deliveries(stack, ignored["id"]) == []
    assert len(receiver.requests) == 2


def test_a_worker_killed_mid_delivery_is_followed_by_the_same_id(stack_factory, receiver):
    stack = stack_factory("postgres", fetch_allow=LOOPBACK, webhook_timeout_s=3, **FAST_FAULTS)
    hook = create_hook(stack.client, stack.headers, receiver.url, ["job.cancelled"])
    receiver.plan("hang", "ok")
    first_worker = stack.start_worker("w1")
    job_id = stack.insert_job(job_body(epochs=1))  # queued, the broker never told: no training starts
    assert stack.cancel(job_id).json()["status"] == "cancelled"  # job.cancelled, sent after the commit
    [first] = receiver.wait_for(1)
    first_worker.kill()  # SIGKILL while the receiver holds the request open
    receiver.release()
    [d] = _deliveries(stack, hook["id"])
    assert d["status"] == "pending" and d["attempts"] == 1
    stack.start_worker("w2")
    first, second = receiver.wait_for(2, timeout=90)
    assert second.headers["webhook-id"] == first.headers["webhook-id"] == d["id"]
    assert verify(hook["secret"], second)["data"]["id"] == job_id
    stack.wait_for(
        job_id, lambda _: delivery_row(stack.Session, d["id"])["status"] == "succeeded", "delivered again"
    )
    row = delivery_row(stack.Session, d["id"])
    assert row["attempts"] == 2 and [a["status_code"] for a in row["attempt_log"]] == [None, 200]
    assert row["attempt_log"][0]["error"].startswith("interrupted")
    assert len(receiver.requests) == 2
