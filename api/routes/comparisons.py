"""Comparisons: the same job trained with several losses over several seeds, and the report that compares
them to the cross-entropy baseline. The routes parse, call `core.compare.service` and answer.

- `POST /v1/comparisons` (a `core.compare.spec.ComparisonCreate`): fans out one child job per
  (variant, seed), and with a `sweep` per (variant, grid point, seed), through the normal job path: the
  same validation (`core.jobspec.validate_job`, every arm), the same per-tenant limit on active jobs (all
  children must fit; the 429 says how many would), the same queue. Every child of seed i trains with
  `training.seed = seeds[i]`, so they share the data split. `priority` and `resources` go to every child
  (routed like any job); a `model.init` is checked as a job's (`model.init.from_job`,
  `variants.<i>.model.init.weights`, ...). `Idempotency-Key` works as for jobs.
- `GET /v1/comparisons/{id}`: progress, the children, and once every child has ended the report
  (computed once, stored in `comparisons.report`).
- `GET /v1/comparisons`: newest first, keyset pages (`cursor`), optional `status`.
- `POST /v1/comparisons/{id}/cancel`: cancels every child that has not ended.
- `GET /v1/comparisons/{id}/report`: the report as a self-contained HTML page (`?download=1`: attachment).
- `DELETE /v1/comparisons/{id}`: an ended comparison with its child jobs and their stored files
  (`core.parent_delete`); 409 while it runs or while a job warm-starts from one of its children.

Statuses (`core.status.ComparisonStatus`): `running`, `cancelling` (cancel requested, children still
ending), then `succeeded` (every child succeeded), `partial` (some did), `failed` (none did) or
`cancelled`. Another tenant's comparison is a 404.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import HTMLResponse

from api.deps import CurrentTenant, IdempotencyDep, SessionDep, SettingsDep, StorageDep
from api.dispatch import dispatch, request_hash
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.schemas_comparisons import ComparisonList, ComparisonPublic, ComparisonSummary
from api.session_route import SessionReleasingRoute
from api.ui import render_report_page
from core.compare import service
from core.compare.spec import ComparisonCreate
from core.db.models import Comparison, Job
from core.errors import Conflict
from core.parent_delete import delete_comparison as delete_ended_comparison
from core.status import ComparisonStatus

__all__ = ["comparison_public", "router"]

router = APIRouter(
    prefix=f"{API_PREFIX}/comparisons", tags=["comparisons"], route_class=SessionReleasingRoute
)


def comparison_public(comp: Comparison, children: list[Job]) -> ComparisonPublic:
    """The answer about one comparison: the service's fields and, once there is a report, its page."""
    report_url = f"{API_PREFIX}/comparisons/{comp.id}/report" if comp.report is not None else None
    return ComparisonPublic(**service.detail(comp, children), report_url=report_url)


@router.post(
    "",
    response_model=ComparisonPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ComparisonPublic, "description": "replay of an Idempotency-Key"},
        404: {"description": "the dataset does not exist (for this tenant)"},
        409: {"description": "the Idempotency-Key was used with another body"},
        422: {
            "description": "the spec cannot be used; `details[].field` names the field (`variants.1.loss`, "
            "`sweep.0.path`, `sweep.0.values.3`, `sweep` for a grid over the bound)"
        },
        429: {
            "description": "the children would exceed the active jobs limit now; the message and "
            "`details.would_fit` say how many would fit; see Retry-After"
        },
    },
)
def create_comparison(
    body: ComparisonCreate,
    session: SessionDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    idem: IdempotencyDep,
    storage: StorageDep,
) -> ComparisonPublic:
    body_hash = request_hash(body)
    find = partial(service.find_by_key, session, tenant)
    before = idem.replay(find, body_hash, hash_of=service.stored_hash, kind="comparison")
    if before is not None:
        return comparison_public(before, service.children(session, before.id))
    comp, job_ids = service.create(
        session, settings, tenant, body, idempotency_key=idem.key, body_hash=body_hash, storage=storage
    )
    dispatch(session, job_ids, settings)
    session.refresh(comp)
    return comparison_public(comp, service.children(session, comp.id))


@router.get("", response_model=ComparisonList)
def list_comparisons(
    session: SessionDep,
    tenant: CurrentTenant,
    status_: Annotated[ComparisonStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorParam = None,
) -> ComparisonList:
    query = service.tenant_query(tenant, status_.value if status_ is not None else None)
    page = keyset_page(session, query, limit=limit, cursor=cursor)
    items = [ComparisonSummary(**fields) for fields in service.summaries(session, page.rows)]
    return ComparisonList(items=items, next_cursor=page.next_cursor)


@router.get("/{comparison_id}", response_model=ComparisonPublic)
def get_comparison(
    comparison_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> ComparisonPublic:
    return comparison_public(*service.get_finalised(session, storage, tenant, comparison_id))


@router.post(
    "/{comparison_id}/cancel",
    response_model=ComparisonPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "the comparison has already ended (its status is named)"}},
)
def cancel_comparison(
    comparison_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> ComparisonPublic:
    return comparison_public(*service.cancel(session, storage, tenant, comparison_id))


@router.delete(
    "/{comparison_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        409: {
            "description": "the comparison has not ended (cancel it first), or a job or tuning study that "
            "warm-starts from one of its child jobs still needs it (named)"
        }
    },
)
def delete_comparison(
    comparison_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    """Delete an ended comparison with its child jobs, their rows and their stored files."""
    delete_ended_comparison(session, storage, tenant, comparison_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


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
    comp, children = service.get_finalised(session, storage, tenant, comparison_id)
    if comp.report is None:
        progress = service.progress((j.status, j.epoch, j.epochs) for j in children)
        raise Conflict(
            f"comparison {comp.id} is still {comp.status}: "
            "the report is ready when every child job has ended",
            details={"status": comp.status, "progress": progress.as_dict()},
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
    html = render_report_page(comp.report, meta)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="comparison-{comp.id}.html"'
    return HTMLResponse(html, headers=headers)
