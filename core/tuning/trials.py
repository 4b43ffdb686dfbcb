"""One trial's life as a job: start it (its params applied to the base job, created and sent like any job)
and, once its job has ended, tell Optuna how it went. Called by the driver (`core.tuning.driver`), which
holds the study's step lease.

    job = trial_job_of(session, row, number)                 # the job of trial `number`, if created
    start_trial(ctx, number, params, trial=None)             # create + send its job (or fail the trial)
    tell_ended(ctx, frozen_trial, job)                       # COMPLETE / PRUNED / FAIL from the job

A trial's job carries the Idempotency-Key `tuning:<study>:<number>`: the database's unique key on
(tenant, Idempotency-Key) makes one job per trial, whatever two steps do at once; the job's
`metadata.tuning` is `{study, trial}`. Optuna and simtrain write through different connections: no
Optuna call is made while this session holds uncommitted writes (SQLite has one writer at a time).

How an ended job is told: succeeded -> COMPLETE with the objective on the validation split (FAIL when the
metric is missing), after the constraint's margin (`min - value`, <= 0 feasible) is set with
`Trial.set_constraint`; cancelled with error code `pruned` -> PRUNED; failed or cancelled otherwise ->
FAIL, the job's error kept in the trial's user attribute `error`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import jobs as jobstate
from core.db.models import Job, TuningStudy
from core.errors import SpecError
from core.settings import Settings
from core.status import JobStatus
from core.tuning.objective import final_value
from core.tuning.storage import live_trial
from core.tuning.validate import trial_job

__all__ = [
    "PRUNED",
    "PRUNED_AT",
    "StepContext",
    "fail_trial",
    "job_key",
    "start_trial",
    "tell_ended",
    "trial_jobs",
]

log = logging.getLogger("simtrain.tuning")

PRUNED = "pruned"  # the error code of a trial job its study's pruner stopped (the job ends cancelled)
PRUNED_AT = "pruned_at_epoch"  # the trial's user attribute the pruning hook sets (core.tuning.pruning)


@dataclass
class StepContext:
    """What a driver step works with: the session, settings, the study row, Optuna's study and storage,
    and `send(job_id)` for training tasks."""

    session: Session
    settings: Settings
    row: TuningStudy
    study: Any
    storage: Any
    send: Any


def job_key(study_id: str, number: int) -> str:
    """The Idempotency-Key of trial `number`'s job."""
    return f"tuning:{study_id}:{number}"


def trial_jobs(session: Session, row: TuningStudy, numbers: list[int]) -> dict[int, Job]:
    """The jobs of the given trials of `row` that exist, by trial number."""
    if not numbers:
        return {}
    keys = {job_key(row.id, n): n for n in numbers}
    query = select(Job).where(Job.tenant_id == row.tenant_id, Job.idempotency_key.in_(list(keys)))
    found = {keys[j.idempotency_key]: j for j in session.execute(query).scalars()}
    session.commit()
    return found


def fail_trial(ctx: StepContext, number: int, code: str, message: str, trial: Any = None) -> None:
    import optuna

    trial = trial or live_trial(ctx.study, ctx.storage, number)
    trial.set_user_attr("error", {"code": code, "message": message[:500]})
    ctx.study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def _create_job(ctx: StepContext, number: int, params: dict[str, Any]) -> Job:
    """The trial's job (queued), created and committed; the one that exists when a step made it first."""
    s, row = ctx.session, ctx.row
    job, spec = trial_job(
        row.spec["base"], params, row.spec["classes"], ctx.settings.max_epochs, field=f"trial {number}"
    )
    spec["metadata"] = {**(spec.get("metadata") or {}), "tuning": {"study": row.id, "trial": number}}
    try:
        created = jobstate.create_job(
            s, tenant_id=row.tenant_id, dataset_ref=job.dataset, spec=spec, epochs=job.training.epochs,
            max_attempts=ctx.settings.max_attempts, idempotency_key=job_key(row.id, number),
            request_hash=jobstate.request_hash(job),
        )  # fmt: skip
        s.commit()
        return created
    except IntegrityError:
        s.rollback()
        return trial_jobs(s, row, [number])[number]


def _dispatch(ctx: StepContext, job_id: str) -> None:
    """Send the job's training task and mark it dispatched; a broker failure leaves it to the reconciler."""
    try:
        ctx.send(job_id)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the worker's reconciler sends it later
        log.warning("tuning %s: could not send job %s: %s", ctx.row.id, job_id, exc)
        return
    jobstate.mark_dispatched(ctx.session, job_id)
    ctx.session.commit()


def start_trial(ctx: StepContext, number: int, params: dict[str, Any], trial: Any = None) -> str | None:
    """Create and send the job of trial `number` (a `trial` from `ask`, or recovered by number); a
    parameter set that makes no valid job fails the trial instead. Returns the job id, if any."""
    try:
        job = _create_job(ctx, number, params)
    except SpecError as exc:
        ctx.session.rollback()
        fail_trial(ctx, number, "invalid_trial", exc.message, trial)
        return None
    (trial or live_trial(ctx.study, ctx.storage, number)).set_user_attr("job_id", job.id)
    if job.status == JobStatus.queued and job.dispatched_at is None:
        _dispatch(ctx, job.id)
    return job.id


def _tell_succeeded(ctx: StepContext, number: int, job: Job) -> None:
    objective = ctx.row.spec["objective"]
    value = final_value(job.final_metrics, objective["metric"])
    if value is None:
        fail_trial(ctx, number, "objective_missing", f"the job reported no finite {objective['metric']!r}")
        return
    constraint = objective.get("constraint")
    if constraint:
        floor_value = final_value(job.final_metrics, constraint["metric"])
        margin = constraint["min"] - floor_value if floor_value is not None else 1.0
        live_trial(ctx.study, ctx.storage, number).set_constraint(constraint["metric"], margin)
    ctx.study.tell(number, value, skip_if_finished=True)


def tell_ended(ctx: StepContext, trial: Any, job: Job) -> None:
    """Tell Optuna the outcome of `trial`, whose job has ended (see the module docstring)."""
    import optuna

    if job.status == JobStatus.succeeded:
        _tell_succeeded(ctx, trial.number, job)
    elif job.status == JobStatus.cancelled and (job.error_code == PRUNED or PRUNED_AT in trial.user_attrs):
        ctx.study.tell(trial.number, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
    else:
        code = job.error_code or job.status
        fail_trial(ctx, trial.number, code, job.error_message or f"the trial's job ended {job.status}")
