"""The statuses of a tuning study (`/v1/tuning`), and which are terminal. Standard library only, so the
HTTP client and the CLI can use them without the database layer.

    from core.tuning.status import TuningStatus, TUNING_TERMINAL, TUNING_ACTIVE

`running` (trials are asked and trained), `cancelling` (cancel requested; trial jobs still ending), then
`succeeded` (at least one trial completed: there is a best trial), `failed` (every trial failed or was
pruned) or `cancelled`. Terminal states never change.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["TUNING_ACTIVE", "TUNING_TERMINAL", "TrialState", "TuningStatus"]


class TuningStatus(StrEnum):
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TUNING_TERMINAL


TUNING_TERMINAL = frozenset({TuningStatus.succeeded, TuningStatus.failed, TuningStatus.cancelled})
TUNING_ACTIVE = (TuningStatus.running.value, TuningStatus.cancelling.value)


class TrialState(StrEnum):
    """A trial's state as the API shows it: Optuna's own trial states, lower case."""

    running = "running"
    complete = "complete"
    pruned = "pruned"
    fail = "fail"
    waiting = "waiting"
