"""Run one training job: claim, heartbeat, train with hooks, upload artifacts, finish.

    from worker.runner import run_job
    outcome = run_job(job_id)          # RunOutcome; never raises for anything the job itself does

The database decides who runs a job: `core.db.jobs.claim` succeeds for exactly one delivery while the
lease is live, so a duplicate message (at-least-once delivery), a terminal job or a job cancelled before it
started is logged and dropped here. After a successful claim the job always leaves `running` through this
function, except when the lease was lost (another worker owns the job now: we stop and touch nothing) or
the process dies (the lease expires and the reconciler re-sends the job, which resumes from its last
checkpoint).

How a run ends:

| training ended because            | job becomes                                      |
| --------------------------------- | ------------------------------------------------ |
| completed / early stopped         | succeeded (artifacts uploaded and recorded)      |
| max_runtime                       | failed `max_runtime_exceeded` (artifacts written) |
| the user cancelled                | cancelled (checkpoint kept)                      |
| a pause was requested             | paused (`release`, no attempt counted)           |
| the worker is shutting down       | queued again (`release`, no attempt), re-sent    |
| the lease was lost                | untouched (another worker owns it)               |
| `SimtrainError` (NaN loss, data)  | failed with the error's code; not retried        |
| any other exception               | failed `internal_error`; traceback logged        |

A job that fails never resumes, so its checkpoints are deleted then (best effort); a succeeded job keeps
those its `training.keep_checkpoints` retention left (listed and warm-started from).
Each way out is one method of `worker.outcomes.JobEnd`; the hooks the engine calls are
`worker.hooks.JobHooks`.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from core.db import Job, make_engine, make_sessionmaker
from core.db import jobs as jobdb
from core.errors import SimtrainError
from core.routing import train_device, worker_kind
from core.settings import Settings, get_settings
from worker.heartbeat import Heartbeat
from worker.hooks import JobHooks, request_shutdown, shutdown_requested
from worker.outcomes import JobEnd, RunOutcome

__all__ = ["RunOutcome", "make_owner", "request_shutdown", "run_job", "session_factory", "shutdown_requested"]

log = logging.getLogger("simtrain.worker.runner")


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@lru_cache(maxsize=8)
def _sessionmaker_for(url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(url, pool_size=4))


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    """One engine per database URL and process, shared by the runner, heartbeats and the reconciler."""
    settings = settings or get_settings()
    return _sessionmaker_for(settings.database_url)


def run_job(job_id: str, *, settings: Settings | None = None, resend=None) -> RunOutcome:
    """Run `job_id` to an end state (see the module docstring). `resend(job_id)` re-queues after a release."""
    settings = settings or get_settings()
    factory = session_factory(settings)
    owner = make_owner()

    session = factory()
    try:
        outcome = jobdb.claim(session, job_id, owner, settings.lease_seconds)
    except Exception:
        session.close()
        raise
    if outcome != jobdb.ClaimOutcome.claimed:
        log.info("job %s: not claimed (%s); nothing to do", job_id, outcome.value)
        session.close()
        return RunOutcome.not_claimed
    log.info("job %s: claimed by %s", job_id, owner)

    hb = Heartbeat(
        factory, job_id, owner, lease_seconds=settings.lease_seconds, interval=settings.heartbeat_seconds
    )
    hb.start()
    hooks = JobHooks(session, job_id, owner, hb)
    try:
        outcome = _run_claimed(JobEnd(session, job_id, owner, settings, hooks, resend))
        hooks.tracking.end()  # the job's MLflow run gets its end (best effort: core.tracking)
        return outcome
    finally:
        hb.stop()
        session.close()


def _run_claimed(end: JobEnd) -> RunOutcome:
    """Train the claimed job and end it: each way out is one `JobEnd` method."""
    try:
        result, storage = _train(end)
    except SimtrainError as exc:
        return end.failed_invalid(exc)
    except Exception as exc:  # noqa: BLE001 - never leave a job running on purpose
        return end.failed_internal(exc, "unexpected error")
    reason = getattr(result, "stop_reason", "completed")
    log.info("job %s: training ended (%s) after epoch %d", end.job_id, reason, end.hooks.last_epoch)
    if end.hooks.lease_lost:
        log.warning("job %s: lease lost; leaving the job to its new owner", end.job_id)
        return RunOutcome.lease_lost
    return end.after_training(result, storage)


def _train(end: JobEnd):
    """Load the job, build its plan and train it (resuming from its checkpoints); (result, storage)."""
    from core.checkpoint import CheckpointStore
    from core.storage import make_storage
    from core.training import train

    session, job_id = end.session, end.job_id
    job = session.get(Job, job_id, populate_existing=True)
    storage = make_storage(end.settings.storage_url)
    plan = _build_plan(session, storage, job, end.settings)
    session.commit()  # end the read transaction before the long run
    if job.epoch == 0 and plan.similarity_spec is not None:  # once, not again on every resume
        from core.similarity import similarity_warnings

        for message in similarity_warnings(plan.similarity_spec, list(plan.dataset.classes)):
            end.hooks.on_warning(message)
    end.checkpoints = end.hooks.checkpoints = CheckpointStore(storage, f"jobs/{job_id}/checkpoints")
    return train(plan, end.hooks, end.checkpoints), storage


def _build_plan(session: Session, storage, job: Job, settings: Settings):
    """The job's TrainPlan: its dataset (classes selected) and specs, its `test_dataset` (opened as the
    dataset is, in the job's classes), and the warm-start weights that `model.init` names
    (`core.weights_store.resolve_init`: an unusable source fails the job as invalid)."""
    from core.data import select_classes
    from core.dataset_store import open_dataset
    from core.decision_spec import decision_of
    from core.training import TrainPlan
    from core.training.splits import align_test_dataset
    from core.weights_store import resolve_init

    spec = dict(job.spec)
    dataset = open_dataset(session, storage, job.tenant_id, job.dataset_ref)
    classes = spec.get("classes")
    if classes is not None and list(classes) != list(dataset.classes):
        dataset = select_classes(dataset, classes)
    test_ref = spec.get("test_dataset")
    test = open_dataset(session, storage, job.tenant_id, test_ref) if test_ref else None
    model_spec = spec.get("model") or {}
    init_spec = model_spec.get("init")
    return TrainPlan(
        dataset=dataset,
        test_dataset=align_test_dataset(test, list(dataset.classes)) if test is not None else None,
        similarity_spec=spec.get("similarity"),
        loss_spec=spec.get("loss") or {"kind": "cross_entropy"},
        model_spec=model_spec,
        training=spec.get("training") or {},
        device=train_device(spec, settings, worker_kind(settings)),  # the job's resources.device, this worker
        init=resolve_init(session, storage, job.tenant_id, init_spec) if init_spec else None,
        data_budget_bytes=settings.train_data_budget_bytes,
        loader_workers=settings.train_loader_workers or None,
        decision=decision_of(spec),
    )
