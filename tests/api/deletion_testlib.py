"""What the deletion and quota tests share: a tiny job trained in the test process as a worker would
(`worker.runner.run_job`: real epochs, checkpoints and artifacts), and the check of a 409.

    from deletion_testlib import TINY_JOB, assert_conflict, trained
    job_id = trained(svc)                       # TINY_JOB for tenant A, succeeded
    error = assert_conflict(r, "cancel it first")
"""

from __future__ import annotations

from typing import Any

__all__ = ["TINY_JOB", "assert_conflict", "trained"]

TINY_JOB: dict[str, Any] = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "loss": {"kind": "cross_entropy"},
    "model": {"kind": "linear"},
    "training": {"epochs": 2, "seed": 0, "batch_size": 128},
}


def trained(svc, body: dict[str, Any] = TINY_JOB, key: str | None = None) -> str:
    """Submit `body` (for tenant A, or the tenant of `key`) and train it here; the succeeded job's id."""
    from worker.runner import RunOutcome, run_job

    job_id = svc.create_job(body, key=key)["id"]
    assert run_job(job_id, settings=svc.settings, resend=lambda _id: None) == RunOutcome.succeeded
    return job_id


def assert_conflict(r, *words: str) -> dict:
    """A 409 `conflict` whose message holds every one of `words`; its error object."""
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict", error
    for word in words:
        assert word in error["message"], (word, error)
    return error
