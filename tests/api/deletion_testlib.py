"""What the deletion and quota tests share: a tiny job trained in the test process as a worker would
(`worker.runner.run_job`: real epochs, checkpoints and artifacts), and the check of a 409.

    from deletion_testlib import COMPARISON, TINY_JOB, assert_conflict, trained, tuning_body
    job_id = trained(svc)                       # TINY_JOB for tenant A, succeeded
    error = assert_conflict(r, "cancel it first")
"""

from __future__ import annotations

from typing import Any

__all__ = ["COMPARISON", "TINY_JOB", "assert_conflict", "trained", "tuning_body"]

TINY_JOB: dict[str, Any] = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "loss": {"kind": "cross_entropy"},
    "model": {"kind": "linear"},
    "training": {"epochs": 2, "seed": 0, "batch_size": 128},
}
COMPARISON: dict[str, Any] = {  # one similarity-aware variant beside cross-entropy, one seed
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "similarity": {"kind": "ordinal"},
    "model": {"kind": "linear"},
    "training": {"epochs": 1, "batch_size": 128},
    "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
    "seeds": 1,
}


def tuning_body(**changes: Any) -> dict[str, Any]:
    """A one-trial study of a linear model on three digits, with `changes` on top."""
    return {
        "dataset": "builtin:digits",
        "classes": ["0", "1", "2"],
        "model": {"kind": "linear"},
        "training": {"epochs": 1, "batch_size": 128},
        "search_space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": True}},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "trials": 1,
        "parallel": 1,
        "seed": 3,
    } | changes


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
