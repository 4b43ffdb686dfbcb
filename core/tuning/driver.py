"""The tuning driver: one step of a study, what the `simtrain.tuning_step` task runs. A step is sent when
the study is created, whenever one of its trial jobs ends (the worker) and by the reconciler for active
studies not stepped lately, so a lost message or a killed worker never loses the study.

    outcome = run_step(session, settings, study_id)     # "stepped" | "busy" | "ended" | "missing" | "lost"

A step, with Optuna's ask-and-tell interface on the study in the project's database:

1. every RUNNING trial whose job has ended is told (`core.tuning.trials.tell_ended`); one without a job
   (a step died between ask and create) gets its job now;
2. a `cancelling` study cancels its trials' jobs; a `running` one asks Optuna for new trials while fewer
   than `parallel` are in flight, fewer than `trials` have been asked and the tenant's active-job limit
   has room, each started as an ordinary job;
3. the trials table and best trial are stored; when every trial has finished the study ends
   `succeeded` (there is a best trial) or `failed`; a cancelling one ends `cancelled` once none runs;
   the end is a `tuning.<status>` webhook event.

Steps are serialised by a lease on the study row (a conditional UPDATE of `step_owner`, valid for
`STEP_LEASE_S`): a second delivery that finds it held sets `step_again`, and the holder steps once more
before it lets go, so no trigger is lost and two steps never run at once. A trial's job is unique in the
database (`core.tuning.trials.job_key`), so even a step that outlived its lease cannot create two jobs
for one trial.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db import jobs as jobstate
from core.db.models import TuningStudy
from core.db.types import now as utcnow
from core.settings import Settings
from core.status import JOB_TERMINAL
from core.tuning.status import TUNING_ACTIVE, TuningStatus
from core.tuning.storage import distributions, load_study, make_sampler, optuna_storage
from core.tuning.table import best_trial, progress, trial_rows
from core.tuning.trials import StepContext, fail_trial, start_trial, tell_ended, trial_jobs
from core.webhooks.outbox import emit, iso

__all__ = ["STEP_LEASE_S", "run_step", "step_once"]

STEP_LEASE_S = 30.0


# ------------------------------------------------------------------------------------------- the lease


def _update(session: Session, study_id: str, *where: Any, **values: Any) -> bool:
    res = session.execute(
        update(TuningStudy)
        .where(TuningStudy.id == study_id, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return res.rowcount == 1


def _acquire(session: Session, study_id: str, owner: str) -> bool:
    t = utcnow()
    free = (TuningStudy.step_owner.is_(None)) | (TuningStudy.step_expires_at < t)
    return _update(
        session, study_id, TuningStudy.status.in_(TUNING_ACTIVE), free,
        step_owner=owner, step_expires_at=t + timedelta(seconds=STEP_LEASE_S),
    )  # fmt: skip


def _release(session: Session, study_id: str, owner: str) -> str:
    """Let go unless another step was asked for meanwhile: "stepped", "again" (still ours) or "lost"."""
    mine = TuningStudy.step_owner == owner
    if _update(session, study_id, mine, TuningStudy.step_again.is_(False),
               step_owner=None, step_expires_at=None, stepped_at=utcnow()):  # fmt: skip
        return "stepped"
    held = session.execute(select(TuningStudy.step_owner).where(TuningStudy.id == study_id)).scalar()
    session.commit()
    return "again" if held == owner else "lost"


def run_step(session: Session, settings: Settings, study_id: str, *, send: Any = None) -> str:
    """One delivery of `simtrain.tuning_step` (see the module docstring). `send(job_id)` sends a trial's
    training task (default `core.queue.send_train`)."""
    owner = uuid.uuid4().hex
    if not _acquire(session, study_id, owner):
        status = session.execute(select(TuningStudy.status).where(TuningStudy.id == study_id)).scalar()
        session.commit()
        if status is None:
            return "missing"
        if status not in TUNING_ACTIVE:
            return "ended"
        _update(session, study_id, step_again=True)  # the holder steps again before it lets go
        if not _acquire(session, study_id, owner):
            return "busy"
    try:
        while True:
            _update(session, study_id, TuningStudy.step_owner == owner, step_again=False)
            step_once(session, settings, study_id, send=send)
            outcome = _release(session, study_id, owner)
            if outcome != "again":
                return outcome
    except BaseException:
        with contextlib.suppress(Exception):
            session.rollback()
            _update(session, study_id, TuningStudy.step_owner == owner, step_owner=None, step_expires_at=None)
        raise


# -------------------------------------------------------------------------------------------- a step


def _default_send(settings: Settings):
    from core.queue import send_train

    return lambda job_id: send_train(job_id, settings)


def _settle(ctx: StepContext) -> None:
    """Tell every running trial whose job has ended; start the job of one that has none."""
    import optuna

    running = [t for t in ctx.study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]
    jobs = trial_jobs(ctx.session, ctx.row, [t.number for t in running])
    for t in running:
        job = jobs.get(t.number)
        if job is None and ctx.row.status == TuningStatus.running:
            start_trial(ctx, t.number, dict(t.params))
        elif job is None:
            fail_trial(ctx, t.number, "cancelled", "the study was cancelled before the trial's job started")
        elif job.status in JOB_TERMINAL:
            tell_ended(ctx, t, job)


def _cancel_jobs(ctx: StepContext) -> None:
    """Cancel the jobs of the trials still running (queued ones end now, running ones at their epoch)."""
    import optuna

    running = [
        t.number for t in ctx.study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING
    ]
    for job in trial_jobs(ctx.session, ctx.row, running).values():
        if job.status not in JOB_TERMINAL:
            jobstate.request_cancel(ctx.session, job.id)


def _room(ctx: StepContext) -> int:
    """How many more jobs the tenant's active-job limit allows now."""
    active = jobstate.count_active_locked(ctx.session, ctx.row.tenant_id)
    ctx.session.commit()
    return ctx.settings.max_active_jobs_per_tenant - active


def _ask_more(ctx: StepContext) -> None:
    """Ask Optuna for trials while there is a free slot, a trial left and room under the limit."""
    import optuna

    spec = ctx.row.spec
    trials = ctx.study.get_trials(deepcopy=False)
    asked = len(trials)
    running = sum(1 for t in trials if t.state == optuna.trial.TrialState.RUNNING)
    room = _room(ctx)
    space = distributions(spec["search_space"])
    while running < spec["parallel"] and asked < spec["trials"] and room > 0:
        trial = ctx.study.ask(space)
        asked += 1
        if start_trial(ctx, trial.number, dict(trial.params), trial) is not None:
            running += 1
            room -= 1


def _record(ctx: StepContext) -> None:
    """Store the trials table and the best trial; end the study when nothing is left to run."""
    row, spec = ctx.row, ctx.row.spec
    rows = trial_rows(ctx.study.get_trials(deepcopy=False))
    best = best_trial(ctx.study)
    p = progress(rows, spec["trials"])
    t = utcnow()
    _update(ctx.session, row.id, trials=rows, best=best, updated_at=t)
    final = None
    if row.status == TuningStatus.running and p["running"] == 0 and p["asked"] >= spec["trials"]:
        final = TuningStatus.succeeded if best is not None else TuningStatus.failed
    elif row.status == TuningStatus.cancelling and p["running"] == 0:
        final = TuningStatus.cancelled
    if final is not None:
        _finish(ctx.session, row, final, best, p)


def _finish(session: Session, row: TuningStudy, final: TuningStatus, best: Any, p: dict[str, Any]) -> None:
    """End the study (unless its status changed meanwhile), with its `tuning.<status>` webhook event in the
    same transaction (`core.webhooks.outbox`)."""
    t = utcnow()
    res = session.execute(
        update(TuningStudy).where(TuningStudy.id == row.id, TuningStudy.status == row.status)
        .values(status=final.value, finished_at=t, updated_at=t).execution_options(synchronize_session=False)
    )  # fmt: skip
    if res.rowcount == 1:
        payload = {"id": row.id, "object": "tuning", "status": final.value, "best_trial": best, "progress": p,
                   "created_at": iso(row.created_at), "finished_at": iso(t)}  # fmt: skip
        emit(session, row.tenant_id, f"tuning.{final.value}", payload)
    session.commit()


def step_once(session: Session, settings: Settings, study_id: str, *, send: Any = None) -> None:
    """Settle, cancel or ask, record (the lease is the caller's)."""
    row = session.get(TuningStudy, study_id, populate_existing=True)
    session.commit()
    if row is None or row.status not in TUNING_ACTIVE:
        return
    storage = optuna_storage(settings.database_url)
    study = load_study(storage, row.id, row.spec)
    study.sampler = make_sampler(row.spec, len(study.get_trials(deepcopy=False)))
    ctx = StepContext(session, settings, row, study, storage, send or _default_send(settings))
    _settle(ctx)
    if row.status == TuningStatus.cancelling:
        _cancel_jobs(ctx)
        _settle(ctx)
    else:
        _ask_more(ctx)
    _record(ctx)
