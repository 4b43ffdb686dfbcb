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
| the worker is shutting down       | queued again (`release`), task re-sent           |
| the lease was lost                | untouched (another worker owns it)               |
| `SimtrainError` (NaN loss, data)  | failed with the error's code; not retried        |
| any other exception               | failed `internal_error`; traceback logged        |

A job that ends succeeded or failed never resumes, so its checkpoints are deleted then (best effort).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
import traceback
import uuid
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import Job, JobStatus, make_engine, make_sessionmaker
from core.db import jobs as jobdb
from core.errors import SimtrainError
from core.settings import Settings, get_settings
from worker.heartbeat import Heartbeat

__all__ = ["RunOutcome", "make_owner", "request_shutdown", "run_job", "session_factory", "shutdown_requested"]

log = logging.getLogger("simtrain.worker.runner")

# Set by the worker's SIGTERM handling (worker.app): every running job checkpoints and is released.
shutdown_requested = threading.Event()

CONTENT_TYPES = {
    ".safetensors": "application/octet-stream",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".png": "image/png",
    ".csv": "text/csv",
    ".txt": "text/plain",
}


class RunOutcome(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    released = "released"  # graceful worker shutdown: queued again, resumes from its checkpoint
    lease_lost = "lease_lost"
    not_claimed = "not_claimed"  # duplicate delivery, terminal, cancelled before start, exhausted, missing


def request_shutdown() -> None:
    """Ask running jobs to stop at the end of their current epoch and go back to the queue."""
    shutdown_requested.set()


def make_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@lru_cache(maxsize=8)
def _sessionmaker_for(url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(url, pool_size=4))


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    """One engine per database URL and process, shared by the runner, heartbeats and the reconciler."""
    settings = settings or get_settings()
    return _sessionmaker_for(settings.database_url)


class JobHooks:
    """`core.training.TrainHooks` writing to the database while the lease is ours."""

    def __init__(self, session: Session, job_id: str, owner: str, heartbeat: Heartbeat) -> None:
        self.s = session
        self.job_id = job_id
        self.owner = owner
        self.hb = heartbeat
        self.last_checkpoint: int | None = None
        self.last_epoch = 0

    # why the run stopped, in priority order
    @property
    def lease_lost(self) -> bool:
        return not self.hb.lease_valid()

    @property
    def cancelled(self) -> bool:
        return self.hb.cancel_requested.is_set()

    @property
    def shutting_down(self) -> bool:
        return shutdown_requested.is_set()

    def _db(self, what: str, fn) -> Any:
        """Progress writes are best effort: a database hiccup must not kill a healthy run."""
        for attempt in range(3):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001
                with contextlib.suppress(Exception):
                    self.s.rollback()
                log.warning("job %s: %s failed (try %d): %s", self.job_id, what, attempt + 1, exc)
                time.sleep(0.5 * (2**attempt))
        return None

    def on_start(self, info: dict[str, Any]) -> None:
        resumed = info.get("resumed_from_epoch")
        msg = f"training on {info.get('device', '?')}"
        if resumed:
            msg += f", resumed from epoch {resumed}"
        log.info("job %s: %s", self.job_id, msg)

        def write():
            jobdb.add_event(self.s, self.job_id, "info", msg, _jsonable(info))
            self.s.commit()

        self._db("start event", write)

    def on_epoch(self, epoch: int, epochs: int, record: dict[str, Any]) -> None:
        self.last_epoch = epoch
        ok = self._db(
            "record_epoch",
            lambda: jobdb.record_epoch(self.s, self.job_id, self.owner, epoch, _jsonable(record)),
        )
        if ok is False:
            log.warning("job %s: epoch %d not recorded: the lease is no longer ours", self.job_id, epoch)
            self.hb.lease_lost.set()
            return
        # notice a cancel at the epoch boundary instead of waiting for the next heartbeat
        cancel = self._db(
            "cancel check",
            lambda: self.s.execute(select(Job.cancel_requested).where(Job.id == self.job_id)).scalar(),
        )
        self._db("commit", self.s.commit)
        if cancel:
            self.hb.cancel_requested.set()

    def on_checkpoint(self, epoch: int) -> None:
        self.last_checkpoint = epoch
        log.info("job %s: checkpoint of epoch %d written", self.job_id, epoch)

    def should_stop(self) -> bool:
        return self.lease_lost or self.cancelled or self.shutting_down

    def on_warning(self, message: str) -> None:
        log.warning("job %s: %s", self.job_id, message)

        def write():
            jobdb.add_event(self.s, self.job_id, "warning", message[:2000])
            self.s.commit()

        self._db("warning event", write)


def _jsonable(value: Any) -> Any:
    """Plain JSON values (numpy / torch scalars become floats, non-finite floats become None)."""
    import math

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        with contextlib.suppress(Exception):
            return _jsonable(value.item())
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return str(value)


def _short(exc: BaseException, limit: int = 500) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return (f"{type(exc).__name__}: {first}" if first else type(exc).__name__)[:limit]


def _build_plan(session: Session, storage, job: Job, settings: Settings):
    from core.data import select_classes
    from core.dataset_store import open_dataset
    from core.training import TrainPlan

    spec = dict(job.spec)
    dataset = open_dataset(session, storage, job.tenant_id, job.dataset_ref)
    classes = spec.get("classes")
    if classes is not None and list(classes) != list(dataset.classes):
        dataset = select_classes(dataset, classes)
    return TrainPlan(
        dataset=dataset,
        similarity_spec=spec.get("similarity"),
        loss_spec=spec.get("loss") or {"kind": "cross_entropy"},
        model_spec=spec.get("model") or {},
        training=spec.get("training") or {},
        device=settings.device,  # "auto" -> cuda when available (core.training.resolve_device)
    )


def _upload_artifacts(session: Session, storage, job_id: str, result) -> list[str]:
    """Write the artifacts, upload them and add their rows to `session` (committed by `finish`)."""
    from core.artifacts import write_artifacts

    names = []
    with tempfile.TemporaryDirectory(prefix=f"simtrain-{job_id[:8]}-") as tmp:
        for path in write_artifacts(result, Path(tmp)):
            path = Path(path)
            key = f"jobs/{job_id}/artifacts/{path.name}"
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            storage.put_file(key, path)
            jobdb.record_artifact(
                session,
                job_id,
                path.name,
                size=path.stat().st_size,
                sha256=digest.hexdigest(),
                content_type=CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream"),
                storage_key=key,
            )
            names.append(path.name)
    return names


def _retrying(session: Session, what: str, job_id: str, fn, *, tries: int = 5):
    """Run a final database write, retrying a database outage with backoff; re-raise the last error."""
    for attempt in range(tries):
        try:
            return fn()
        except SimtrainError:
            _safe_rollback(session)
            raise
        except Exception as exc:
            _safe_rollback(session)
            if attempt == tries - 1:
                raise
            log.warning("job %s: %s failed (try %d): %s", job_id, what, attempt + 1, _short(exc))
            time.sleep(min(8.0, 0.5 * (2**attempt)))
    return None


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
        return _run_claimed(session, job_id, owner, settings, hooks, resend)
    finally:
        hb.stop()
        session.close()


def _run_claimed(
    session: Session, job_id: str, owner: str, settings: Settings, hooks: JobHooks, resend
) -> RunOutcome:
    from core.checkpoint import CheckpointStore
    from core.storage import make_storage
    from core.training import train

    checkpoints = None

    def fail(code: str, message: str) -> RunOutcome:
        try:
            ok = _retrying(
                session,
                "finish(failed)",
                job_id,
                lambda: jobdb.finish(
                    session, job_id, owner, JobStatus.failed, error_code=code, error_message=message[:2000]
                ),
            )
        except Exception:  # noqa: BLE001 - database gone: the lease expires, the reconciler re-sends
            log.error("job %s: could not record failure %s; the lease will expire", job_id, code)
            return RunOutcome.lease_lost
        if not ok:
            log.warning("job %s: could not record failure %s: the lease is no longer ours", job_id, code)
            return RunOutcome.lease_lost
        if checkpoints is not None:
            _drop_checkpoints(checkpoints, job_id)
        return RunOutcome.failed

    try:
        job = session.get(Job, job_id, populate_existing=True)
        storage = make_storage(settings.storage_url)
        plan = _build_plan(session, storage, job, settings)
        session.commit()  # end the read transaction before the long run
        checkpoints = CheckpointStore(storage, f"jobs/{job_id}/checkpoints")
        result = train(plan, hooks, checkpoints)
    except SimtrainError as exc:
        _safe_rollback(session)
        if hooks.lease_lost:
            return RunOutcome.lease_lost
        log.warning("job %s: failed with %s: %s", job_id, exc.code, exc.message)
        return fail(exc.code, exc.message)
    except Exception as exc:  # noqa: BLE001 - never leave a job running on purpose
        _safe_rollback(session)
        log.error("job %s: unexpected error\n%s", job_id, traceback.format_exc())
        if hooks.lease_lost:
            return RunOutcome.lease_lost
        return fail("internal_error", _short(exc))

    reason = getattr(result, "stop_reason", "completed")
    log.info("job %s: training ended (%s) after epoch %d", job_id, reason, hooks.last_epoch)
    if hooks.lease_lost:
        log.warning("job %s: lease lost; leaving the job to its new owner", job_id)
        return RunOutcome.lease_lost

    try:
        if reason == "cancelled":
            if hooks.cancelled:
                ok = _retrying(
                    session,
                    "finish(cancelled)",
                    job_id,
                    lambda: jobdb.finish(
                        session,
                        job_id,
                        owner,
                        JobStatus.cancelled,
                        train_seconds=result.train_seconds,
                        device=result.device,
                    ),
                )
                return RunOutcome.cancelled if ok else RunOutcome.lease_lost
            # graceful worker shutdown: give the job back, it resumes from the checkpoint
            where = f"epoch {hooks.last_checkpoint}" if hooks.last_checkpoint else "the start"
            ok = _retrying(
                session,
                "release",
                job_id,
                lambda: jobdb.release(session, job_id, owner, f"worker shutting down; resumes from {where}"),
            )
            if not ok:
                return RunOutcome.lease_lost
            log.info("job %s: released (resumes from %s)", job_id, where)
            _resend(session, job_id, settings, resend)
            return RunOutcome.released

        final = _jsonable(result.final_metrics) if result.final_metrics is not None else None
        if reason == "max_runtime":
            status, code, message = (
                JobStatus.failed,
                "max_runtime_exceeded",
                (f"stopped after {result.train_seconds:.0f}s at the training.max_runtime_s limit"),
            )
        else:
            status, code, message = JobStatus.succeeded, None, None
        names: list[str] = []

        def complete() -> bool:
            # artifact rows and the final state commit together (finish commits the session)
            names[:] = _upload_artifacts(session, storage, job_id, result)
            return jobdb.finish(
                session,
                job_id,
                owner,
                status,
                final_metrics=final,
                error_code=code,
                error_message=message,
                train_seconds=float(result.train_seconds),
                device=str(result.device),
            )

        ok = _retrying(session, f"finish({status.value})", job_id, complete)
        if not ok:
            log.warning("job %s: finished training but the lease is no longer ours", job_id)
            return RunOutcome.lease_lost
        log.info("job %s: %s (artifacts: %s)", job_id, status.value, ", ".join(names))
        _drop_checkpoints(checkpoints, job_id)
        return RunOutcome.succeeded if status == JobStatus.succeeded else RunOutcome.failed
    except Exception as exc:  # noqa: BLE001
        _safe_rollback(session)
        log.error("job %s: error after training\n%s", job_id, traceback.format_exc())
        if hooks.lease_lost:
            return RunOutcome.lease_lost
        if isinstance(exc, SimtrainError):
            return fail(exc.code, exc.message)
        return fail("internal_error", _short(exc))


def _resend(session: Session, job_id: str, settings: Settings, resend) -> None:
    from core.queue import send_train

    try:
        (resend or (lambda jid: send_train(jid, settings)))(job_id)
        jobdb.mark_dispatched(session, job_id)
        session.commit()
    except Exception as exc:  # noqa: BLE001 - the reconciler sends it later
        _safe_rollback(session)
        log.warning("job %s: could not re-send after release (%s); the reconciler will", job_id, _short(exc))


def _drop_checkpoints(checkpoints, job_id: str) -> None:
    """A job that ended succeeded or failed will never resume: free its checkpoint storage (best effort)."""
    try:
        checkpoints.clear()
    except Exception as exc:  # noqa: BLE001
        log.warning("job %s: could not delete its checkpoints: %s", job_id, _short(exc))


def _safe_rollback(session: Session) -> None:
    with contextlib.suppress(Exception):
        session.rollback()
