"""The job state machine. Every transition is one conditional UPDATE, so the database decides races.

    queued --claim--> running --finish--> succeeded | failed | cancelled
    queued --cancel--> cancelled           running --lease expires--> claimable again (resume)
    running --release--> queued            (graceful worker stop: the attempt is given back)
    queued --pause--> paused               running --pause requested, next epoch--> paused
    paused --resume--> queued              paused --cancel--> cancelled

Terminal states never change: no statement here updates a row whose status is terminal. A worker owns a
running job only while `lease_owner` is its id and `lease_expires_at` is in the future; it extends the
lease by heartbeat. A duplicate delivery finds a live lease (or a terminal state) and leaves the job alone.

Reads the API shares: `get_for_tenant` (another tenant's job is NotFound), `find_by_key` (the job an
Idempotency-Key created) and `request_hash` (the canonical hash of a request body it is stored with).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.db.models import Job, JobArtifact, JobEpoch, JobEvent, JobStatus, Tenant
from core.db.types import now as utcnow
from core.errors import NotFound
from core.status import JOB_TERMINAL
from core.webhooks.outbox import emit_job_end

__all__ = [
    "ClaimOutcome",
    "HeartbeatResult",
    "add_event",
    "claim",
    "claimable_stale",
    "count_active_locked",
    "create_job",
    "find_by_key",
    "finish",
    "get_for_tenant",
    "heartbeat",
    "mark_dispatched",
    "record_artifact",
    "record_checkpoint_bytes",
    "record_epoch",
    "release",
    "request_cancel",
    "request_hash",
    "request_pause",
    "resume",
]

ACTIVE = (JobStatus.queued.value, JobStatus.running.value, JobStatus.paused.value)  # not ended yet


class ClaimOutcome(StrEnum):
    claimed = "claimed"
    leased_elsewhere = "leased_elsewhere"  # a live lease: a duplicate delivery
    terminal = "terminal"
    cancelled = "cancelled"  # cancel was requested before the job started
    paused = "paused"  # paused while queued: it waits for `resume`, which sends it again
    exhausted = "exhausted"  # too many attempts: failed now
    missing = "missing"


@dataclass(frozen=True)
class HeartbeatResult:
    owned: bool  # False: the lease was lost (expired and taken, or the job ended)
    cancel_requested: bool


def request_hash(body: BaseModel) -> str:
    """SHA-256 of the body's canonical JSON (sorted keys): equal for equal requests, whatever their order."""
    canonical = json.dumps(
        body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def get_for_tenant(s: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's job, or NotFound (also for another tenant's job)."""
    job = s.execute(select(Job).where(Job.id == job_id[:64], Job.tenant_id == tenant_id)).scalar_one_or_none()
    if job is None:
        raise NotFound(f"job {job_id[:64]!r} not found")
    return job


def find_by_key(s: Session, tenant_id: str, key: str) -> Job | None:
    """The tenant's job created with this Idempotency-Key, if any."""
    return s.execute(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    ).scalar_one_or_none()


def add_event(s: Session, job_id: str, kind: str, message: str = "", data: dict | None = None) -> None:
    s.add(JobEvent(job_id=job_id, kind=kind, message=message, data=data, created_at=utcnow()))


def create_job(
    s: Session,
    *,
    tenant_id: str,
    dataset_ref: str,
    spec: dict[str, Any],
    epochs: int,
    max_attempts: int,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    comparison_id: str | None = None,
    variant: str | None = None,
) -> Job:
    job = Job(
        tenant_id=tenant_id,
        dataset_ref=dataset_ref,
        spec=spec,
        status=JobStatus.queued.value,
        epochs=epochs,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        comparison_id=comparison_id,
        variant=variant,
    )
    s.add(job)
    s.flush()
    add_event(s, job.id, "state", "queued", {"status": "queued"})
    return job


def count_active_locked(s: Session, tenant_id: str) -> int:
    """The tenant's queued + running jobs, counted under a lock on the tenant's row (PostgreSQL), so two
    requests racing for the last place under a quota cannot both get it. Hold the transaction until the
    new jobs are inserted and committed. (SQLite, single-user, has no row locks: the count is advisory.)"""
    s.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())
    return s.execute(
        select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE))
    ).scalar_one()


def mark_dispatched(s: Session, job_id: str, when: datetime | None = None) -> None:
    s.execute(update(Job).where(Job.id == job_id).values(dispatched_at=when or utcnow()))


def claim(
    s: Session, job_id: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> ClaimOutcome:
    """Atomically take the job for `owner`. Commits. Safe to call from any number of deliveries at once."""
    t = now or utcnow()
    claimable = or_(
        Job.status == JobStatus.queued.value,
        and_(Job.status == JobStatus.running.value, Job.lease_expires_at < t),
    )
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, claimable, Job.cancel_requested.is_(False), Job.attempts < Job.max_attempts)
        .values(
            status=JobStatus.running.value,
            lease_owner=owner,
            lease_expires_at=t + timedelta(seconds=lease_seconds),
            heartbeat_at=t,
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, t),
            updated_at=t,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:
        attempts = s.execute(select(Job.attempts).where(Job.id == job_id)).scalar_one()
        add_event(s, job_id, "state", "running", {"status": "running", "attempt": attempts, "worker": owner})
        s.commit()
        return ClaimOutcome.claimed
    s.rollback()
    job = s.get(Job, job_id, populate_existing=True)
    if job is None:
        return ClaimOutcome.missing
    if job.status in JOB_TERMINAL:
        return ClaimOutcome.terminal
    if job.status == JobStatus.paused.value:
        return ClaimOutcome.paused
    if job.status == JobStatus.running.value and job.lease_expires_at and job.lease_expires_at >= t:
        return ClaimOutcome.leased_elsewhere
    if job.cancel_requested:
        _end(s, job_id, None, JobStatus.cancelled, t, message="cancelled")
        s.commit()
        return ClaimOutcome.cancelled
    # claimable but out of attempts
    _end(
        s,
        job_id,
        None,
        JobStatus.failed,
        t,
        error_code="attempts_exhausted",
        error_message=f"the job was interrupted {job.attempts} times (max_attempts={job.max_attempts})",
    )
    s.commit()
    return ClaimOutcome.exhausted


def heartbeat(
    s: Session, job_id: str, owner: str, lease_seconds: float, now: datetime | None = None
) -> HeartbeatResult:
    t = now or utcnow()
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running.value, Job.lease_owner == owner)
        .values(lease_expires_at=t + timedelta(seconds=lease_seconds), heartbeat_at=t)
        .execution_options(synchronize_session=False)
    )
    cancel = bool(s.execute(select(Job.cancel_requested).where(Job.id == job_id)).scalar())
    s.commit()
    return HeartbeatResult(owned=res.rowcount == 1, cancel_requested=cancel)


def record_epoch(s: Session, job_id: str, owner: str, epoch: int, record: dict[str, Any]) -> bool:
    """Store one epoch's metrics (replacing a row a resumed run wrote before) while the lease is ours."""
    t = utcnow()
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running.value, Job.lease_owner == owner)
        .values(epoch=epoch, latest_metrics=record, updated_at=t)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        s.rollback()
        return False
    s.execute(delete(JobEpoch).where(JobEpoch.job_id == job_id, JobEpoch.epoch == epoch))
    s.add(JobEpoch(job_id=job_id, epoch=epoch, record=record, created_at=t))
    add_event(s, job_id, "epoch", f"epoch {epoch}", record)
    s.commit()
    return True


def record_checkpoint_bytes(s: Session, job_id: str, owner: str, nbytes: int) -> bool:
    """Store what the job's kept checkpoints occupy (`Job.checkpoint_bytes`, counted in the tenant's
    stored-bytes quota) while the lease is ours; False (nothing written) for a stale owner."""
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running.value, Job.lease_owner == owner)
        .values(checkpoint_bytes=max(0, int(nbytes)))
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        s.rollback()
        return False
    s.commit()
    return True


def record_artifact(
    s: Session, job_id: str, name: str, *, size: int, sha256: str, content_type: str, storage_key: str
) -> None:
    s.execute(delete(JobArtifact).where(JobArtifact.job_id == job_id, JobArtifact.name == name))
    s.add(
        JobArtifact(
            job_id=job_id,
            name=name,
            size_bytes=size,
            sha256=sha256,
            content_type=content_type,
            storage_key=storage_key,
        )
    )


def _end(
    s: Session,
    job_id: str,
    owner: str | None,
    status: JobStatus,
    t: datetime,
    *,
    error_code: str | None = None,
    error_message: str | None = None,
    message: str = "",
    values: dict[str, Any] | None = None,
    from_status: tuple[str, ...] = ACTIVE,
) -> bool:
    cond = [Job.id == job_id, Job.status.in_(from_status)]
    if owner is not None:
        cond += [Job.status == JobStatus.running.value, Job.lease_owner == owner]
    res = s.execute(
        update(Job)
        .where(*cond)
        .values(
            status=status.value,
            lease_owner=None,
            lease_expires_at=None,
            error_code=error_code,
            error_message=error_message,
            finished_at=t,
            updated_at=t,
            **(values or {}),
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:
        data: dict[str, Any] = {"status": status.value}
        if error_code:
            data |= {"error_code": error_code, "error_message": error_message}
        add_event(s, job_id, "state", message or status.value, data)
        emit_job_end(s, job_id)  # webhook deliveries, in this transaction (core.webhooks.outbox)
        return True
    return False


def finish(
    s: Session,
    job_id: str,
    owner: str,
    status: JobStatus,
    *,
    final_metrics: dict[str, Any] | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    train_seconds: float | None = None,
    device: str | None = None,
) -> bool:
    """End a job this worker owns. False when the lease was lost or the job already ended. Commits."""
    assert status in JOB_TERMINAL
    ok = _end(
        s,
        job_id,
        owner,
        status,
        utcnow(),
        error_code=error_code,
        error_message=error_message,
        values={"final_metrics": final_metrics, "train_seconds": train_seconds, "device": device},
    )
    s.commit() if ok else s.rollback()
    return ok


def release(s: Session, job_id: str, owner: str, reason: str, to: JobStatus = JobStatus.queued) -> bool:
    """Give a running job back (graceful worker stop: `queued` again; a pause: `paused`); it resumes from
    its checkpoint.

    A hand-back is not an interruption: the attempt its claim counted is given back too (`attempts` - 1),
    so only a lost lease (a killed worker) counts against `max_attempts`."""
    assert to in (JobStatus.queued, JobStatus.paused)
    t = utcnow()
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running.value, Job.lease_owner == owner)
        .values(
            status=to.value,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=t,
            attempts=Job.attempts - 1,
            pause_requested=False,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:
        add_event(s, job_id, "state", f"{to.value}: {reason}", {"status": to.value, "reason": reason})
        s.commit()
        return True
    s.rollback()
    return False


def request_pause(s: Session, job_id: str) -> str | None:
    """Pause a queued job at once, or flag a running one (its worker checkpoints at the next epoch boundary
    and releases it as `paused`). The status afterwards, or None when the job has ended. Commits."""
    t = utcnow()
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.queued.value)
        .values(status=JobStatus.paused.value, updated_at=t)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:
        add_event(s, job_id, "state", "paused", {"status": "paused"})
    else:
        res = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.running.value, Job.pause_requested.is_(False))
            .values(pause_requested=True, updated_at=t)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 1:
            add_event(s, job_id, "state", "pause requested", {"status": "running", "pause_requested": True})
    s.commit()
    status = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one()
    return None if status in JOB_TERMINAL else status


def resume(s: Session, job_id: str) -> tuple[str | None, bool]:
    """Resume a paused job (queued again: send it) or withdraw a pause a running job has not reached yet.
    (status afterwards or None when the job has ended, whether it must be sent). Commits."""
    t = utcnow()
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.paused.value)
        .values(status=JobStatus.queued.value, dispatched_at=None, updated_at=t)
        .execution_options(synchronize_session=False)
    )
    send = res.rowcount == 1
    if send:
        add_event(s, job_id, "state", "queued: resumed", {"status": "queued", "reason": "resumed"})
    else:
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.running.value)
            .values(pause_requested=False, updated_at=t)
            .execution_options(synchronize_session=False)
        )
    s.commit()
    status = s.execute(select(Job.status).where(Job.id == job_id)).scalar_one()
    return (None if status in JOB_TERMINAL else status), send


def request_cancel(s: Session, job_id: str) -> str:
    """Cancel a queued or paused job at once, or flag a running one (the worker stops within an epoch).

    Returns the job's status afterwards. Commits."""
    t = utcnow()
    waiting = (JobStatus.queued.value, JobStatus.paused.value)
    if _end(s, job_id, None, JobStatus.cancelled, t, message="cancelled", from_status=waiting):
        s.commit()
        return JobStatus.cancelled.value
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.running.value, Job.cancel_requested.is_(False))
        .values(cancel_requested=True, updated_at=t)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:
        add_event(s, job_id, "state", "cancel requested", {"status": "running", "cancel_requested": True})
    s.commit()
    return s.execute(select(Job.status).where(Job.id == job_id)).scalar_one()


def claimable_stale(s: Session, *, requeue_after_seconds: float, now: datetime | None = None) -> list[str]:
    """Jobs the broker may have lost: queued and not dispatched recently, or running with an expired lease."""
    t = now or utcnow()
    cutoff = t - timedelta(seconds=requeue_after_seconds)
    rows = s.execute(
        select(Job.id).where(
            or_(
                and_(
                    Job.status == JobStatus.queued.value,
                    or_(Job.dispatched_at.is_(None), Job.dispatched_at < cutoff),
                ),
                and_(Job.status == JobStatus.running.value, Job.lease_expires_at < t),
            )
        )
    )
    return [r[0] for r in rows]
