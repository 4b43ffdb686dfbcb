"""Training jobs: create (validated, idempotent, quota-bound), list, get, events (+ SSE), metrics, cancel,
pause, resume and delete (an ended job, with its stored files: `core.job_delete`)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine, and_, bindparam, case, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import (
    INVALID_KEY,
    CurrentTenant,
    IdempotencyDep,
    PresentedKey,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from api.dispatch import dispatch, request_hash
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.schemas import (
    EpochRecord,
    EventList,
    EventPublic,
    JobErrorPublic,
    JobList,
    JobMetricsPublic,
    JobProgress,
    JobPublic,
)
from api.session_route import SessionReleasingRoute
from core.auth import lookup_hash
from core.dataset_import import job_dataset, validate_pending_job
from core.db import jobs as jobstate
from core.db.models import ApiKey, Job, JobEpoch, JobEvent
from core.errors import Conflict, NotFound, RateLimited, Unauthorized
from core.job_delete import delete_job as delete_ended_job
from core.jobspec import JobCreate, validate_job
from core.routing import job_device, job_priority
from core.status import JOB_TERMINAL, JobStatus
from core.storage_quota import check_not_full
from core.weights_store import check_init_source

log = logging.getLogger("simtrain.api")

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"], route_class=SessionReleasingRoute)

SSE_POLL_SECONDS = 0.5
SSE_KEEPALIVE_SECONDS = 15.0
MAX_EVENT_ID = 2**63 - 1  # event ids are BIGINT: a larger `after` would overflow the query (500)


# ------------------------------------------------------------------------------------------------ helpers


EpochTimes = tuple[datetime | None, datetime | None, int]
"""The (first, last, count) of the times of a job's last ETA_EPOCHS epoch records."""
ETA_EPOCHS = 20


def _seconds_per_epoch(job: Job, epoch_times: EpochTimes | None) -> float | None:
    first, last, count = epoch_times or (None, None, 0)
    if count >= 2 and first is not None and last is not None:
        span = (last - first).total_seconds()
        return max(span / (count - 1), 0.0)
    if job.started_at and job.epoch > 0:
        end = last if count and last is not None else job.updated_at
        return max((end - job.started_at).total_seconds() / job.epoch, 0.0)
    return None


def job_public(job: Job, epoch_times: EpochTimes | None = None) -> JobPublic:
    epochs = max(int(job.epochs or 0), 0)
    epoch = min(max(int(job.epoch or 0), 0), epochs) if epochs else int(job.epoch or 0)
    if job.status == JobStatus.succeeded.value:
        fraction = 1.0
    else:
        fraction = (epoch / epochs) if epochs else 0.0
    eta = None
    if job.status == JobStatus.running.value:
        per_epoch = _seconds_per_epoch(job, epoch_times)
        if per_epoch is not None:
            eta = round(per_epoch * max(epochs - epoch, 0), 1)
    error = None
    if job.error_code:
        error = JobErrorPublic(code=job.error_code, message=job.error_message or "")
    spec = dict(job.spec or {})
    return JobPublic(
        id=job.id,
        status=job.status,
        dataset=job.dataset_ref,
        classes=list(spec.get("classes") or []),
        spec=spec,
        progress=JobProgress(
            epoch=epoch, epochs=epochs, fraction=min(max(fraction, 0.0), 1.0), eta_seconds=eta
        ),
        latest_metrics=job.latest_metrics,
        final_metrics=job.final_metrics,
        error=error,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        device=job.device,
        train_seconds=job.train_seconds,
        cancel_requested=bool(job.cancel_requested),
        pause_requested=bool(job.pause_requested),
        priority=job_priority(spec),
        resources={"device": job_device(spec)},
        idempotency_key=job.idempotency_key,
        created_at=job.created_at,
        updated_at=job.updated_at,
        dispatched_at=job.dispatched_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _recent_epoch_times(agg):
    """A scalar subquery: `agg` over the times of the job's last ETA_EPOCHS epoch records, evaluated only
    for a running job (the ETA needs them; CASE skips the subquery for every other status)."""
    recent = (
        select(JobEpoch.created_at.label("t"))
        .where(JobEpoch.job_id == Job.id)
        .order_by(JobEpoch.epoch.desc())
        .limit(ETA_EPOCHS)
        .correlate(Job)
        .subquery()
    )
    inner = select(agg(recent.c.t)).scalar_subquery()
    return case((Job.status == JobStatus.running.value, inner), else_=None)


# What `job_public` reads, as plain columns: a Row has them as attributes like a Job does, without the
# cost of loading an ORM entity (identity map, state snapshot) for a read-only answer.
_PUBLIC_COLUMNS = [
    Job.__table__.c[name]
    for name in (
        "id", "status", "dataset_ref", "spec", "epoch", "epochs", "latest_metrics", "final_metrics",
        "error_code", "error_message", "attempts", "max_attempts", "device", "train_seconds",
        "cancel_requested", "pause_requested", "idempotency_key", "created_at", "updated_at", "dispatched_at", "started_at",
        "finished_at",
    )
]  # fmt: skip
# The status read in one statement, so one round trip: the presented key, joined to its tenant's job with
# `job_public`'s columns and, while the job runs, its recent epoch times. No row: an unknown key (401); a
# revoked key: 401; no job: 404 (another tenant's job too). Built once, with bind parameters: building it
# and its cache key per request cost more than running it.
_STATUS_READ = (
    select(
        ApiKey.revoked_at,
        *_PUBLIC_COLUMNS,
        _recent_epoch_times(func.min).label("eta_first"),
        _recent_epoch_times(func.max).label("eta_last"),
        _recent_epoch_times(func.count).label("eta_count"),
    )
    .select_from(ApiKey)
    .outerjoin(Job, and_(Job.tenant_id == ApiKey.tenant_id, Job.id == bindparam("job_id")))
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


def _fetch_status(engine: Engine, params: dict[str, str]) -> Any:
    with engine.connect() as conn:
        return conn.execute(_STATUS_READ, params).one_or_none()


def read_job_status(engine: Engine, key: str, job_id: str) -> bytes:
    """The JSON of `GET /v1/jobs/{id}`, or Unauthorized / NotFound. `engine` runs in autocommit: the single
    SELECT needs no BEGIN, and there is no ROLLBACK when the connection goes back to the pool. A
    connection that died since its last use (a database restart; idle ones are pinged, see
    core.db.session) is tried once more on a new one: the read changes nothing, so it is safe to repeat."""
    key_hash = lookup_hash(key)
    if key_hash is None:
        raise Unauthorized(INVALID_KEY)
    params = {"key_hash": key_hash, "job_id": job_id[:64]}
    try:
        row = _fetch_status(engine, params)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        row = _fetch_status(engine, params)
    if row is None or row.revoked_at is not None:
        raise Unauthorized(INVALID_KEY)
    if row.id is None:
        raise NotFound(f"job {job_id[:64]!r} not found")
    times = None
    if row.status == JobStatus.running.value:
        times = (row.eta_first, row.eta_last, int(row.eta_count or 0))
    # the model was validated when it was built: its JSON is what FastAPI would send, without FastAPI
    # validating it a second time (`response_model` still documents the route)
    return job_public(row, times).model_dump_json().encode()


def _check_room(session: Session, tenant: str, limit: int) -> None:
    """RateLimited while the tenant has `limit` jobs queued or running (the tenant's row stays locked on
    PostgreSQL until the new job is committed)."""
    active = jobstate.count_active_locked(session, tenant)
    if active >= limit:
        raise RateLimited(
            f"{active} jobs are queued or running, the limit is {limit}; retry when some have finished",
            retry_after=30,
        )


# ------------------------------------------------------------------------------------------------- routes


@router.post(
    "",
    response_model=JobPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": JobPublic, "description": "replay of an Idempotency-Key: the job created before"},
        404: {"description": "the dataset does not exist (for this tenant)"},
        409: {"description": "the Idempotency-Key was used with another body"},
        422: {"description": "the spec cannot be used; `details[].field` names the field"},
        429: {"description": "too many queued or running jobs, or the storage quota is full; Retry-After"},
    },
)
def create_job(
    body: JobCreate,
    session: SessionDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    idem: IdempotencyDep,
    storage: StorageDep,
) -> JobPublic:
    body_hash = request_hash(body)

    def replay() -> Job | None:  # what this Idempotency-Key created (200), or a 409 for another body
        find = partial(jobstate.find_by_key, session, tenant)
        return idem.replay(find, body_hash, hash_of=lambda job: job.request_hash, kind="job")

    before = replay()
    if before is not None:
        return job_public(before)
    dataset_ref, info = job_dataset(session, settings, tenant, body.dataset)  # a URI: registered, imported
    spec = (
        validate_job(body, info.classes, max_epochs=settings.max_epochs)
        if info is not None
        else validate_pending_job(body, max_epochs=settings.max_epochs)  # the dataset is still importing
    )
    check_init_source(session, tenant, body.model.init, storage)  # the tenant's job (checkpoint) / weights
    check_not_full(session, settings, tenant)  # 429 storage_quota_exceeded: a job stores more
    _check_room(session, tenant, settings.max_active_jobs_per_tenant)
    try:
        job = jobstate.create_job(
            session,
            tenant_id=tenant,
            dataset_ref=dataset_ref,
            spec=spec,
            epochs=body.training.epochs,
            max_attempts=settings.max_attempts,
            idempotency_key=idem.key,
            request_hash=body_hash,
        )
        session.commit()
    except IntegrityError:  # the same Idempotency-Key at the same moment: the other request won
        session.rollback()
        before = replay()
        if before is None:
            raise
        return job_public(before)
    dispatch(session, [job.id], settings)
    session.refresh(job)
    return job_public(job)


@router.get("", response_model=JobList)
def list_jobs(
    session: SessionDep,
    tenant: CurrentTenant,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorParam = None,
) -> JobList:
    query = select(Job).where(Job.tenant_id == tenant)
    if status_ is not None:
        query = query.where(Job.status == status_.value)
    page = keyset_page(session, query, limit=limit, cursor=cursor)
    return JobList(items=[job_public(r) for r in page.rows], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: str, request: Request, key: PresentedKey) -> Response:
    # async, with the key check and the query in one thread-pool hop (no session, no dependency in a thread)
    body = await run_in_threadpool(read_job_status, request.app.state.autocommit_engine, key, job_id)
    return Response(content=body, media_type="application/json")


# cancel, pause and resume: each answers the job as it now is, or 409 when it has already ended
JOB_ACTION: dict = {
    "response_model": JobPublic,
    "status_code": status.HTTP_202_ACCEPTED,
    "responses": {409: {"description": "the job has already ended (its status is named)"}},
}


@router.post("/{job_id}/cancel", **JOB_ACTION)
def cancel_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> JobPublic:
    job = jobstate.get_for_tenant(session, tenant, job_id)
    if job.status in JOB_TERMINAL:
        raise Conflict(f"job {job.id} is already {job.status}", details={"status": job.status})
    new_status = jobstate.request_cancel(session, job.id)
    if new_status in JOB_TERMINAL and new_status != JobStatus.cancelled.value:
        raise Conflict(f"job {job.id} is already {new_status}", details={"status": new_status})
    session.refresh(job)
    return job_public(job)


@router.post("/{job_id}/pause", **JOB_ACTION)
def pause_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> JobPublic:
    """A queued job is `paused` at once; a running one checkpoints at its next epoch boundary, frees its
    worker and becomes `paused`. Idempotent."""
    job = jobstate.get_for_tenant(session, tenant, job_id)
    if job.status in JOB_TERMINAL or jobstate.request_pause(session, job.id) is None:
        session.refresh(job)
        raise Conflict(f"job {job.id} is already {job.status}", details={"status": job.status})
    session.refresh(job)
    return job_public(job)


@router.post("/{job_id}/resume", **JOB_ACTION)
def resume_job(job_id: str, session: SessionDep, settings: SettingsDep, tenant: CurrentTenant) -> JobPublic:
    """A paused job is queued again (and sent); it resumes from its checkpoint. Idempotent."""
    job = jobstate.get_for_tenant(session, tenant, job_id)
    status_after, send = (None, False) if job.status in JOB_TERMINAL else jobstate.resume(session, job.id)
    if status_after is None:
        session.refresh(job)
        raise Conflict(f"job {job.id} is already {job.status}", details={"status": job.status})
    if send:
        dispatch(session, [job.id], settings)
    session.refresh(job)
    return job_public(job)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        409: {
            "description": "the job has not ended (cancel it first), or a comparison, a tuning study or "
            "a job that warm-starts from it still needs it (named)"
        }
    },
)
def delete_job(job_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant) -> Response:
    """Delete an ended job: its events, epochs and artifacts, and its checkpoints and artifact files."""
    delete_ended_job(session, storage, tenant, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _event_public(e: JobEvent) -> EventPublic:
    return EventPublic(id=e.id, kind=e.kind, message=e.message or "", data=e.data, created_at=e.created_at)


def _events_after(session: Session, job_id: str, after: int, limit: int) -> list[JobEvent]:
    return list(
        session.execute(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit)
        ).scalars()
    )


@router.get("/{job_id}/events", response_model=EventList)
def list_events(
    job_id: str,
    session: SessionDep,
    tenant: CurrentTenant,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID, description="only events with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> EventList:
    job = jobstate.get_for_tenant(session, tenant, job_id)
    events = _events_after(session, job.id, after, limit)
    return EventList(
        items=[_event_public(e) for e in events], last_id=events[-1].id if events else after or None
    )


def _sse(event: EventPublic) -> str:
    data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


@router.get(
    "/{job_id}/events/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def stream_events(
    job_id: str,
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    after: Annotated[int, Query(ge=0, le=MAX_EVENT_ID)] = 0,
    max_seconds: Annotated[
        float, Query(gt=0, le=3600, description="the stream ends after this long")
    ] = 600.0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> StreamingResponse:
    """The job's events as Server-Sent Events (`id:` lines; send `Last-Event-ID` to resume).

    Ends after the terminal state event, or after `max_seconds` (an `event: timeout` line)."""

    def the_job() -> Job:
        try:
            return jobstate.get_for_tenant(session, tenant, job_id)
        finally:
            session.close()  # end the transaction (auth + job row): hold no connection while streaming

    job = await run_in_threadpool(the_job)
    start = after
    if last_event_id and last_event_id.strip().isdigit():
        start = max(start, min(int(last_event_id.strip()), MAX_EVENT_ID))
    factory = request.app.state.sessionmaker
    the_job_id = job.id

    def poll(last: int) -> tuple[list[EventPublic], str | None]:
        with factory() as s:
            events = [_event_public(e) for e in _events_after(s, the_job_id, last, 200)]
            st = s.execute(select(Job.status).where(Job.id == the_job_id)).scalar_one_or_none()
        return events, st

    async def generate():
        last = start
        deadline = time.monotonic() + max_seconds
        last_sent = time.monotonic()
        yield "retry: 2000\n\n"
        while True:
            events, st = await run_in_threadpool(poll, last)
            for event in events:
                yield _sse(event)
                last = event.id
                last_sent = time.monotonic()
                if event.kind == "state" and (event.data or {}).get("status") in JOB_TERMINAL:
                    return
            if not events and (st is None or st in JOB_TERMINAL):
                return
            if time.monotonic() >= deadline:
                yield f"event: timeout\ndata: {json.dumps({'after': last})}\n\n"
                return
            if time.monotonic() - last_sent >= SSE_KEEPALIVE_SECONDS:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            if await request.is_disconnected():
                return
            if not events:
                await asyncio.sleep(SSE_POLL_SECONDS)

    return StreamingResponse(
        generate(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{job_id}/metrics", response_model=JobMetricsPublic)
def job_metrics(job_id: str, session: SessionDep, tenant: CurrentTenant) -> JobMetricsPublic:
    job = jobstate.get_for_tenant(session, tenant, job_id)
    rows = session.execute(
        select(JobEpoch).where(JobEpoch.job_id == job.id).order_by(JobEpoch.epoch)
    ).scalars()
    return JobMetricsPublic(
        job_id=job.id,
        epochs=[EpochRecord(epoch=r.epoch, created_at=r.created_at, metrics=r.record or {}) for r in rows],
        final=job.final_metrics,
    )
