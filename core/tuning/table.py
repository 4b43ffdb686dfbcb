"""The trials table and best trial of a study as simtrain stores and shows them (plain JSON), made from
Optuna's `FrozenTrial`s, and the progress counted from such a table.

    rows = trial_rows(study.get_trials(deepcopy=False))   # one dict per trial, by number
    best = best_trial(study)                              # {number, params, value, job_id} or None
    progress(rows, planned=12)                            # counts by state, fraction done

A row: `number`, `state` (`core.tuning.status.TrialState`), `params` (path -> value), `value` (the
objective on the validation split: completed trials; a pruned trial's last reported value), `job_id`,
`intermediate` (epoch -> value reported to the pruner), `constraint` (the constraint metric's margin
below its floor: <= 0 is feasible), `error` ({code, message}: failed trials), `started_at`,
`finished_at`.
"""

from __future__ import annotations

import math
from typing import Any

from core.tuning.status import TrialState

__all__ = ["FINISHED", "best_trial", "progress", "trial_rows"]

FINISHED = (TrialState.complete.value, TrialState.pruned.value, TrialState.fail.value)


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _iso(when: Any) -> str | None:
    return when.isoformat() if when is not None else None


def _row(t: Any) -> dict[str, Any]:
    constraints = t.constraints or {}
    return {
        "number": t.number,
        "state": t.state.name.lower(),
        "params": dict(t.params),
        "value": _finite(t.value),
        "job_id": t.user_attrs.get("job_id"),
        "intermediate": {str(k): _finite(v) for k, v in sorted(t.intermediate_values.items())},
        "constraint": _finite(next(iter(constraints.values()))) if constraints else None,
        "error": t.user_attrs.get("error"),
        "started_at": _iso(t.datetime_start),
        "finished_at": _iso(t.datetime_complete),
    }


def trial_rows(trials: list[Any]) -> list[dict[str, Any]]:
    """One JSON row per Optuna trial, in trial order."""
    return [_row(t) for t in sorted(trials, key=lambda t: t.number)]


def best_trial(study: Any) -> dict[str, Any] | None:
    """Optuna's best trial (`Study.best_trial`: among the feasible ones when there is a constraint)."""
    try:
        t = study.best_trial
    except ValueError:  # no completed (feasible) trial yet
        return None
    return {
        "number": t.number,
        "params": dict(t.params),
        "value": _finite(t.value),
        "job_id": t.user_attrs.get("job_id"),
    }


def progress(rows: list[dict[str, Any]], planned: int) -> dict[str, Any]:
    """{trials, running, complete, pruned, failed, fraction}: the table's trials counted by state."""
    count = {s: sum(1 for r in rows if r["state"] == s) for s in (*FINISHED, TrialState.running.value)}
    done = sum(count[s] for s in FINISHED)
    return {
        "trials": planned,
        "asked": len(rows),
        "running": count[TrialState.running.value],
        "complete": count[TrialState.complete.value],
        "pruned": count[TrialState.pruned.value],
        "failed": count[TrialState.fail.value],
        "fraction": min(done / planned, 1.0) if planned else 0.0,
    }
