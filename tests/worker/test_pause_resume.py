"""Pause and resume through the API with a real worker (PostgreSQL + Redis).

`POST /v1/jobs/{id}/pause` on a running job: the worker checkpoints at the next epoch boundary, frees
itself (it trains another job meanwhile) and the job is `paused`; `POST /v1/jobs/{id}/resume` queues it
again and it continues bit-identically on CPU (its history equals an uninterrupted run's), with no attempt
counted. A queued job pauses at once and its message is dropped by the claim; cancel works on a paused
job; pause and resume of an ended job are 409.
"""

from __future__ import annotations

import pytest
from worker_testlib import SLOW_MODEL, job_body

pytestmark = [pytest.mark.services, pytest.mark.slow]

TIMING = ("seconds", "samples_per_s")


def _history(stack, job_id: str) -> list[dict]:
    r = stack.client.get(f"/v1/jobs/{job_id}/metrics", headers=stack.headers)
    assert r.status_code == 200, r.text
    return [{k: v for k, v in e["metrics"].items() if k not in TIMING} for e in r.json()["epochs"]]


def _post(stack, job_id: str, action: str):
    return stack.client.post(f"/v1/jobs/{job_id}/{action}", headers=stack.headers)


@pytest.mark.timeout(400)
def test_pause_a_running_job_frees_the_worker_and_resume_is_bit_identical(stack_factory):
    stack = stack_factory("postgres", lease_seconds=30, heartbeat_seconds=1)
    worker = stack.start_worker()
    body = job_body(model=SLOW_MODEL, batch_size=16, epochs=5, seed=11)
    job_id = stack.submit(body)
    stack.wait_epoch(job_id, 1)

    r = _post(stack, job_id, "pause")
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("running", "paused")
    job = stack.wait_status(job_id, "paused", "succeeded", "failed", timeout=60)
    assert job["status"] == "paused", (job, stack.logs())
    assert job["attempts"] == 0 and job["lease_owner"] is None and not job["pause_requested"]
    paused_at = job["epoch"]
    assert 1 <= paused_at < 5
    assert _post(stack, job_id, "pause").status_code == 202  # idempotent: still paused
    assert stack.get(job_id)["status"] == "paused"

    other = stack.submit(job_body(epochs=2, seed=2))  # the worker is free: it trains another job
    assert stack.wait_status(other, "succeeded", "failed", timeout=120)["status"] == "succeeded"
    assert stack.job_row(job_id)["status"] == "paused" and stack.job_row(job_id)["epoch"] == paused_at

    r = _post(stack, job_id, "resume")
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("queued", "running", "succeeded")
    job = stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=180)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["attempts"] == 1
    resumed = [(e.data or {}).get("resumed_from_epoch") for e in stack.events(job_id, "info")]
    assert resumed == [None, paused_at], resumed

    ref_id = stack.submit(body)  # the same job, uninterrupted
    assert stack.wait_status(ref_id, "succeeded", "failed", timeout=180)["status"] == "succeeded"
    assert _history(stack, job_id) == _history(stack, ref_id)
    assert stack.get(job_id)["final_metrics"] == stack.get(ref_id)["final_metrics"]
    assert worker.alive()
    for action in ("pause", "resume"):  # an ended job never changes
        r = _post(stack, job_id, action)
        assert r.status_code == 409, r.text
        assert stack.get(job_id)["status"] == "succeeded"


@pytest.mark.timeout(300)
def test_a_queued_job_pauses_at_once_and_can_be_cancelled_or_resumed(stack_factory):
    stack = stack_factory("postgres", lease_seconds=30, heartbeat_seconds=1)
    job_id = stack.submit(job_body(epochs=2, seed=3))  # no worker yet: the message waits in the broker
    kept = stack.submit(job_body(epochs=2, seed=4))
    for jid in (job_id, kept):
        r = _post(stack, jid, "pause")
        assert r.status_code == 202 and r.json()["status"] == "paused", r.text
    worker = stack.start_worker()  # takes their messages; the claim leaves a paused job alone
    stack.wait_for(
        job_id, lambda j: worker.count("not claimed (paused)") >= 1, "dropped by the claim", timeout=60
    )
    for jid in (job_id, kept):
        job = stack.job_row(jid)
        assert job["status"] == "paused" and job["attempts"] == 0, job

    r = _post(stack, job_id, "cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled", r.text
    assert _post(stack, job_id, "resume").status_code == 409
    assert _post(stack, job_id, "pause").status_code == 409
    assert stack.get(job_id)["status"] == "cancelled"

    r = _post(stack, kept, "resume")
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "succeeded"), r.text
    job = stack.wait_status(kept, "succeeded", "failed", "cancelled", timeout=120)
    assert job["status"] == "succeeded" and job["attempts"] == 1, (job, stack.logs())
    assert worker.alive()


def test_pause_and_resume_of_a_missing_job_is_404(stack_factory):
    stack = stack_factory("postgres")
    for action in ("pause", "resume"):
        assert _post(stack, "no-such-job", action).status_code == 404


def test_a_comparison_with_a_paused_child_is_still_active():
    from core.compare.service import derived_status, progress

    p = progress([("paused", 2, 5), ("succeeded", 5, 5)])
    assert p.paused == 1 and p.fraction == 7 / 10
    assert derived_status("running", p) == "running"
    assert derived_status("running", progress([("cancelled", 2, 5), ("succeeded", 5, 5)])) != "running"
