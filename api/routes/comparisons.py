"""Comparisons: the same job trained with several losses over several seeds, and the report that compares
them to the cross-entropy baseline.

- `POST /v1/comparisons` (a `core.compare.spec.ComparisonCreate`): fans out one child job per
  (variant, seed) through the normal job path: the same validation (`core.jobspec.validate_job`), the same
  per-tenant limit on active jobs (all children must fit), the same queue. Every variant of seed i trains
  with `training.seed = seeds[i]`, so they share the data split. `Idempotency-Key` works as for jobs.
- `GET /v1/comparisons/{id}`: progress, the children, and once every child has ended the report
  (computed once, stored in `comparisons.report`).
- `GET /v1/comparisons`: newest first, keyset pages (`cursor`), optional `status`.
- `POST /v1/comparisons/{id}/cancel`: cancels every child that has not ended.
- `GET /v1/comparisons/{id}/report`: the report as a self-contained HTML page (`?download=1`: attachment).

Statuses: `running`, `cancelling` (cancel requested, children still ending), then `succeeded` (every child
succeeded), `partial` (some did), `failed` (none did) or `cancelled`. Another tenant's comparison is a 404.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from api.dispatch import dispatch, request_hash
from api.routes import API_PREFIX
from api.schemas import JobErrorPublic, decode_cursor, encode_cursor
from core.compare.html import render_report_html
from core.compare.report import comparison_report
from core.compare.spec import ComparisonCreate, child_jobs, seed_values, variants_with_baseline
from core.dataset_store import dataset_info
from core.db import jobs as jobstate
from core.db.models import TERMINAL, Comparison, Job, JobStatus
from core.db.types import now as utcnow
from core.errors import Conflict, NotFound, RateLimited, SpecError
from core.jobspec import validate_job

log = logging.getLogger("simtrain.api")

router = APIRouter(prefix=f"{API_PREFIX}/comparisons", tags=["comparisons"])

TERMINAL_VALUES = frozenset(s.value for s in TERMINAL)
ACTIVE_COMPARISON = ("running", "cancelling")
COMPARISON_STATUSES = ("running", "cancelling", "succeeded", "partial", "failed", "cancelled")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
HEADLINE_KEYS = ("accuracy", "mistake_severity", "mean_similarity", "mean_class_distance", "group_accuracy")
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="the same key with the same body returns the same comparison; with another body: 409",
    ),
]


# ------------------------------------------------------------------------------------------------ schemas


class ComparisonProgress(BaseModel):
    total: int
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    fraction: float = Field(ge=0, le=1, description="epochs done over epochs planned, all children")


class ComparisonChild(BaseModel):
    job_id: str = Field(max_length=36)
    variant: str = Field(max_length=64)
    seed: int
    status: str = Field(max_length=16)
    epoch: int
    epochs: int
    metrics: dict[str, Any] | None = Field(default=None, description="headline final metrics once succeeded")
    error: JobErrorPublic | None = None


class VariantPublic(BaseModel):
    name: str = Field(max_length=64)
    loss: dict[str, Any]


class ComparisonSummary(BaseModel):
    id: str = Field(max_length=36)
    status: str = Field(max_length=16)
    dataset: str = Field(max_length=100)
    classes: list[str]
    variants: list[VariantPublic]
    seeds: list[int]
    progress: ComparisonProgress
    metadata: dict[str, str] | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class ComparisonPublic(ComparisonSummary):
    spec: dict[str, Any] = Field(description="the request as validated (defaults filled in)")
    children: list[ComparisonChild]
    report: dict[str, Any] | None = Field(
        default=None, description="once every child has ended; see core.compare.report"
    )
    report_url: str | None = Field(default=None, description="the HTML report, once there is one")


class ComparisonList(BaseModel):
    items: list[ComparisonSummary]
    next_cursor: str | None = Field(default=None, max_length=200)


# ------------------------------------------------------------------------------------------------ helpers


def get_comparison_row(session: Session, tenant_id: str, comparison_id: str) -> Comparison:
    """The tenant's comparison, or NotFound (also for another tenant's)."""
    row = session.execute(
        select(Comparison).where(Comparison.id == comparison_id[:64], Comparison.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"comparison {comparison_id[:64]!r} not found")
    return row


def _children(session: Session, comparison_id: str) -> list[Job]:
    return list(
        session.execute(
            select(Job).where(Job.comparison_id == comparison_id).order_by(Job.created_at, Job.id)
        )
        .scalars()
        .all()
    )


def _seed_of(job: Job) -> int:
    return int(((job.spec or {}).get("training") or {}).get("seed") or 0)


def _progress(rows: list[tuple[str, int, int]]) -> ComparisonProgress:
    """From (status, epoch, epochs) of every child."""
    counts = {s: 0 for s in ("queued", "running", "succeeded", "failed", "cancelled")}
    done = planned = 0.0
    for st, epoch, epochs in rows:
        counts[st] = counts.get(st, 0) + 1
        epochs = max(int(epochs or 0), 1)
        planned += epochs
        done += epochs if st in TERMINAL_VALUES else min(max(int(epoch or 0), 0), epochs)
    fraction = done / planned if planned else 0.0
    return ComparisonProgress(total=len(rows), fraction=min(max(fraction, 0.0), 1.0), **counts)


def _derived_status(stored: str, progress: ComparisonProgress) -> str:
    """The stored status while children are active; the final one once all have ended."""
    if stored not in ACTIVE_COMPARISON:
        return stored
    if progress.total == 0 or progress.queued + progress.running > 0:
        return stored
    if progress.succeeded == progress.total:
        return "succeeded"
    if stored == "cancelling" and progress.cancelled:
        return "cancelled"
    return "partial" if progress.succeeded else "failed"


def _summary_fields(comp: Comparison, progress: ComparisonProgress) -> dict[str, Any]:
    spec = comp.spec or {}
    return {
        "id": comp.id,
        "status": _derived_status(comp.status, progress),
        "dataset": spec.get("dataset", ""),
        "classes": list(spec.get("classes") or []),
        "variants": [VariantPublic(**v) for v in spec.get("variants") or []],
        "seeds": list(spec.get("seed_values") or []),
        "progress": progress,
        "metadata": (spec.get("request") or {}).get("metadata"),
        "idempotency_key": comp.idempotency_key,
        "created_at": comp.created_at,
        "updated_at": comp.updated_at,
        "finished_at": comp.finished_at,
    }


def comparison_public(comp: Comparison, children: list[Job]) -> ComparisonPublic:
    progress = _progress([(j.status, j.epoch, j.epochs) for j in children])
    order = {v.get("name"): i for i, v in enumerate((comp.spec or {}).get("variants") or [])}
    kids = []
    for j in sorted(children, key=lambda j: (_seed_of(j), order.get(j.variant, 99), j.variant or "")):
        metrics = None
        if j.status == JobStatus.succeeded.value and j.final_metrics:
            metrics = {k: j.final_metrics.get(k) for k in HEADLINE_KEYS if k in j.final_metrics}
        kids.append(
            ComparisonChild(
                job_id=j.id,
                variant=j.variant or "",
                seed=_seed_of(j),
                status=j.status,
                epoch=int(j.epoch or 0),
                epochs=int(j.epochs or 0),
                metrics=metrics,
                error=JobErrorPublic(code=j.error_code, message=j.error_message or "")
                if j.error_code
                else None,
            )
        )
    return ComparisonPublic(
        **_summary_fields(comp, progress),
        spec=(comp.spec or {}).get("request") or {},
        children=kids,
        report=comp.report,
        report_url=f"{API_PREFIX}/comparisons/{comp.id}/report" if comp.report is not None else None,
    )


def finalize_if_done(session: Session, storage: Any, comp: Comparison, children: list[Job]) -> Comparison:
    """When every child has ended and there is no report yet: build it, store it with the final status."""
    if comp.status not in ACTIVE_COMPARISON:
        return comp
    progress = _progress([(j.status, j.epoch, j.epochs) for j in children])
    final = _derived_status(comp.status, progress)
    if final in ACTIVE_COMPARISON:
        return comp
    report = comparison_report(session, storage, comp)
    session.rollback()  # end the read transaction before the write
    t = utcnow()
    session.execute(
        update(Comparison)
        .where(Comparison.id == comp.id, Comparison.status.in_(ACTIVE_COMPARISON))
        .values(status=final, report=report, finished_at=t, updated_at=t)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(comp)
    return comp


def _validated_specs(body: ComparisonCreate, dataset_classes: list[str], max_epochs: int, seeds: list[int]):
    """(variant, seed, JobCreate, spec) per child; each variant validated once by the job path."""
    index = {v.name: i for i, v in enumerate(body.variants)}
    checked: dict[str, dict[str, Any]] = {}
    out = []
    for name, seed, job in child_jobs(body, seeds):
        if name not in checked:
            try:
                checked[name] = validate_job(job, dataset_classes, max_epochs=max_epochs)
            except SpecError as e:
                if name in index and (e.field == "loss" or e.field.startswith("loss.")):
                    raise SpecError(f"variants.{index[name]}.{e.field}", e.reason) from None
                raise
        spec = copy.deepcopy(checked[name])
        spec["training"]["seed"] = seed
        spec["metadata"] = job.metadata
        out.append((name, seed, job, spec))
    return out


# ------------------------------------------------------------------------------------------------- routes


@router.post(
    "",
    response_model=ComparisonPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ComparisonPublic, "description": "replay of an Idempotency-Key"},
        404: {"description": "the dataset does not exist (for this tenant)"},
        409: {"description": "the Idempotency-Key was used with another body"},
        422: {"description": "the spec cannot be used; `details[].field` names the field"},
        429: {"description": "the children would exceed the active jobs limit; see Retry-After"},
    },
)
def create_comparison(
    body: ComparisonCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    idempotency_key: IdempotencyKey = None,
) -> ComparisonPublic:
    body_hash = request_hash(body)
    if idempotency_key is not None:
        existing = session.execute(
            select(Comparison).where(
                Comparison.tenant_id == tenant, Comparison.idempotency_key == idempotency_key
            )
        ).scalar_one_or_none()
        if existing is not None:
            if (existing.spec or {}).get("request_hash") != body_hash:
                raise Conflict(
                    "this Idempotency-Key was used with a different request body",
                    details={"comparison_id": existing.id, "field": "Idempotency-Key"},
                )
            response.status_code = status.HTTP_200_OK
            return comparison_public(existing, _children(session, existing.id))

    info = dataset_info(session, tenant, body.dataset)
    seeds = seed_values(body)
    children = _validated_specs(body, info.classes, settings.max_epochs, seeds)
    n = len(children)
    limit = settings.max_active_jobs_per_tenant
    if n > limit:
        raise SpecError(
            "seeds", f"{n} child jobs (variants x seeds) exceed the limit of {limit} active jobs per tenant"
        )
    active = jobstate.count_active_locked(session, tenant)
    if active + n > limit:
        raise RateLimited(
            f"{active} jobs are queued or running and this comparison adds {n}; the limit is {limit}. "
            "Retry when some have finished",
            retry_after=30,
        )

    first_spec = children[0][3]
    variants = [
        {"name": name, "loss": loss.model_dump(mode="json") if isinstance(loss, BaseModel) else dict(loss)}
        for name, loss in variants_with_baseline(body)
    ]
    comp = Comparison(
        tenant_id=tenant,
        spec={
            "request": body.model_dump(mode="json"),
            "request_hash": body_hash,
            "dataset": body.dataset,
            "classes": first_spec["classes"],
            "similarity": first_spec.get("similarity"),
            "seed_values": seeds,
            "variants": variants,
            "variant_names": [v["name"] for v in variants],
        },
        status="running",
        idempotency_key=idempotency_key,
    )
    session.add(comp)
    session.flush()
    job_ids = []
    for name, _seed, job, spec in children:
        row = jobstate.create_job(
            session,
            tenant_id=tenant,
            dataset_ref=body.dataset,
            spec=spec,
            epochs=job.training.epochs,
            max_attempts=settings.max_attempts,
            request_hash=request_hash(job),
            comparison_id=comp.id,
            variant=name,
        )
        job_ids.append(row.id)
    session.commit()

    dispatch(session, job_ids, settings)
    session.refresh(comp)
    return comparison_public(comp, _children(session, comp.id))


@router.get("", response_model=ComparisonList)
def list_comparisons(
    session: SessionDep,
    tenant: CurrentTenant,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(" + "|".join(COMPARISON_STATUSES) + ")$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ComparisonList:
    query = select(Comparison).where(Comparison.tenant_id == tenant)
    if status_ is not None:
        query = query.where(Comparison.status == status_)
    if cursor:
        created, last_id = decode_cursor(cursor)
        query = query.where(
            or_(
                Comparison.created_at < created,
                and_(Comparison.created_at == created, Comparison.id < last_id),
            )
        )
    rows = (
        session.execute(query.order_by(Comparison.created_at.desc(), Comparison.id.desc()).limit(limit + 1))
        .scalars()
        .all()
    )
    page = rows[:limit]
    kids: dict[str, list[tuple[str, int, int]]] = {c.id: [] for c in page}
    if page:
        for cid, st, epoch, epochs in session.execute(
            select(Job.comparison_id, Job.status, Job.epoch, Job.epochs).where(
                Job.comparison_id.in_(list(kids))
            )
        ):
            kids[cid].append((st, epoch, epochs))
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    items = [ComparisonSummary(**_summary_fields(c, _progress(kids[c.id]))) for c in page]
    return ComparisonList(items=items, next_cursor=next_cursor)


@router.get("/{comparison_id}", response_model=ComparisonPublic)
def get_comparison(
    comparison_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> ComparisonPublic:
    comp = get_comparison_row(session, tenant, comparison_id)
    children = _children(session, comp.id)
    comp = finalize_if_done(session, storage, comp, children)
    return comparison_public(comp, children)


@router.post(
    "/{comparison_id}/cancel",
    response_model=ComparisonPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "the comparison has already ended (its status is named)"}},
)
def cancel_comparison(
    comparison_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> ComparisonPublic:
    comp = get_comparison_row(session, tenant, comparison_id)
    children = _children(session, comp.id)
    comp = finalize_if_done(session, storage, comp, children)
    if comp.status not in ACTIVE_COMPARISON:
        raise Conflict(f"comparison {comp.id} is already {comp.status}", details={"status": comp.status})
    session.execute(
        update(Comparison)
        .where(Comparison.id == comp.id, Comparison.status == "running")
        .values(status="cancelling", updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    for job in children:
        if job.status not in TERMINAL_VALUES:
            jobstate.request_cancel(session, job.id)
    session.expire_all()
    comp = get_comparison_row(session, tenant, comparison_id)
    children = _children(session, comp.id)
    comp = finalize_if_done(session, storage, comp, children)
    return comparison_public(comp, children)


@lru_cache(maxsize=1)
def chart_library() -> str:
    """The vendored Chart.js UMD build (api/static), inlined into the self-contained report."""
    return (STATIC_DIR / "chart.umd.min.js").read_text(encoding="utf-8")


@router.get(
    "/{comparison_id}/report",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "a self-contained page (works offline)"},
        409: {"description": "the comparison has not finished yet"},
    },
)
def comparison_report_page(
    comparison_id: str,
    session: SessionDep,
    storage: StorageDep,
    tenant: CurrentTenant,
    download: Annotated[bool, Query(description="send as an attachment")] = False,
) -> HTMLResponse:
    comp = get_comparison_row(session, tenant, comparison_id)
    children = _children(session, comp.id)
    comp = finalize_if_done(session, storage, comp, children)
    if comp.report is None:
        progress = _progress([(j.status, j.epoch, j.epochs) for j in children])
        raise Conflict(
            f"comparison {comp.id} is still {comp.status}: the report is ready when every child job has ended",
            details={"status": comp.status, "progress": progress.model_dump()},
        )
    spec = comp.spec or {}
    meta = {
        "id": comp.id,
        "status": comp.status,
        "dataset": spec.get("dataset"),
        "variants": spec.get("variants") or [],
        "created_at": comp.created_at.isoformat() if comp.created_at else None,
        "finished_at": comp.finished_at.isoformat() if comp.finished_at else None,
        "metadata": (spec.get("request") or {}).get("metadata"),
    }
    html = render_report_html(comp.report, meta, chart_js=chart_library())
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="comparison-{comp.id}.html"'
    return HTMLResponse(html, headers=headers)
