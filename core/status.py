"""The statuses of jobs and comparisons, and which of them are terminal: one place for the API, the worker,
the client and the pages.

    from core.status import JobStatus, JOB_TERMINAL, ComparisonStatus, COMPARISON_TERMINAL

Terminal states never change (docs/reliability.md). Imports nothing but the standard library, so the
HTTP client can use it without the database layer.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobStatus", "JOB_TERMINAL", "ComparisonStatus", "COMPARISON_TERMINAL"]


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    paused = "paused"  # not terminal: checkpointed and off the workers until resumed (queued again)
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in JOB_TERMINAL


JOB_TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class ComparisonStatus(StrEnum):
    """A comparison's status, derived from its children's until it is finalised.

    `partial`: some children succeeded and some did not; `cancelling`: cancel was asked and children are
    still stopping.
    """

    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    partial = "partial"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in COMPARISON_TERMINAL


COMPARISON_TERMINAL = frozenset(
    {ComparisonStatus.succeeded, ComparisonStatus.partial, ComparisonStatus.failed, ComparisonStatus.cancelled}
)
