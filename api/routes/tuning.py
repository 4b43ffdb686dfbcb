"""Tuning studies: an Optuna study over a job spec whose trials are ordinary jobs on the queue. The routes
parse, call `core.tuning.service` and answer; the driver (`core.tuning.driver`, the `simtrain.tuning_step`
task) asks, starts and tells the trials.

- `POST /v1/tuning` (a `core.tuning.spec.TuningCreate`: a job spec plus `search_space`, `objective`,
  `trials`, `parallel`, `sampler`, `pruner`, `seed`): validated against the dataset (every path exists,
  every value the space can produce makes a valid job, the objective is a metric the jobs report), nothing
  stored on a 422; `parallel` beyond the tenant's free active-job places is a 429 that says how many fit.
  `priority` and `resources` go to every trial job; a `model.init` is checked as a job's (`model.init.from_job`,
  or `search_space.<path>` for a searched `model.init.*`). `Idempotency-Key` works as for jobs.
- `GET /v1/tuning`: newest first, keyset pages (`cursor`), optional `status`.
- `GET /v1/tuning/{id}`: status, progress, `best_trial` {number, params, value, job_id}, every trial.
- `POST /v1/tuning/{id}/cancel`: no new trials; the running ones' jobs are cancelled.
- `GET /v1/tuning/{id}/report`: an offline HTML page: Optuna's optimisation history, intermediate values
  and parameter importances, the trials table (`?download=1`: attachment).
- `DELETE /v1/tuning/{id}`: an ended study with its trial jobs, their stored files and its Optuna study
  (`core.parent_delete`); 409 while it runs or while a job warm-starts from one of its trials.

Another tenant's study is a 404.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import CurrentTenant, IdempotencyDep, SessionDep, SettingsDep, StorageDep
from api.dispatch import request_hash
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.session_route import SessionReleasingRoute
from api.ui.render import render_tuning_report
from core.db.models import TuningStudy
from core.parent_delete import delete_study
from core.tuning import service
from core.tuning.report import study_report
from core.tuning.spec import TuningCreate
from core.tuning.status import TuningStatus

__all__ = ["TuningList", "TuningPublic", "TuningSummary", "router", "tuning_public"]

router = APIRouter(prefix=f"{API_PREFIX}/tuning", tags=["tuning"], route_class=SessionReleasingRoute)


class TuningProgress(BaseModel):
    trials: int = Field(description="trials planned")
    asked: int
    running: int
    complete: int
    pruned: int
    failed: int
    fraction: float = Field(ge=0, le=1, description="finished trials over trials planned")


class BestTrial(BaseModel):
    number: int
    params: dict[str, Any]
    value: float | None
    job_id: str | None = Field(default=None, max_length=36)


class TuningTrial(BestTrial):
    state: str = Field(max_length=16, description="running, complete, pruned, fail (Optuna's states)")
    intermediate: dict[str, float | None] = Field(description="epoch -> value reported to the pruner")
    constraint: float | None = Field(default=None, description="the constraint's margin: <= 0 feasible")
    error: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    job_status: str | None = Field(default=None, max_length=16)
    epoch: int = 0
    epochs: int = 0


class TuningSummary(BaseModel):
    id: str = Field(max_length=36)
    status: str = Field(max_length=16)
    dataset: str = Field(max_length=100)
    objective: dict[str, Any]
    search_space: dict[str, Any]
    sampler: str
    pruner: str
    parallel: int
    seed: int | None = None
    progress: TuningProgress
    best_trial: BestTrial | None = None
    metadata: dict[str, str] | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None


class TuningPublic(TuningSummary):
    spec: dict[str, Any] = Field(description="the request as validated (defaults filled in)")
    trials: list[TuningTrial]
    report_url: str


class TuningList(BaseModel):
    items: list[TuningSummary]
    next_cursor: str | None = Field(default=None, max_length=200)


def tuning_public(session: Any, row: TuningStudy) -> TuningPublic:
    """The answer about one study: the service's fields and its report page."""
    fields = service.detail(row, service.trial_job_rows(session, row))
    return TuningPublic(**fields, report_url=f"{API_PREFIX}/tuning/{row.id}/report")


@router.post(
    "",
    response_model=TuningPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": TuningPublic, "description": "replay of an Idempotency-Key"},
        404: {"description": "the dataset does not exist (for this tenant)"},
        409: {"description": "the Idempotency-Key was used with another body"},
        422: {"description": "the request cannot be used; `details[].field` names the field"},
        429: {"description": "`parallel` trials do not fit the active jobs limit now; see Retry-After"},
    },
)
def create_tuning(
    body: TuningCreate,
    session: SessionDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    idem: IdempotencyDep,
    storage: StorageDep,
) -> TuningPublic:
    body_hash = request_hash(body)
    find = partial(service.find_by_key, session, tenant)
    before = idem.replay(find, body_hash, hash_of=service.stored_hash, kind="tuning")
    if before is not None:
        return tuning_public(session, before)
    row = service.create(
        session, settings, tenant, body, idempotency_key=idem.key, body_hash=body_hash, storage=storage
    )
    service.send_first_step(session, settings, row)
    return tuning_public(session, row)


@router.get("", response_model=TuningList)
def list_tuning(
    session: SessionDep,
    tenant: CurrentTenant,
    status_: Annotated[TuningStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorParam = None,
) -> TuningList:
    query = service.tenant_query(tenant, status_.value if status_ is not None else None)
    page = keyset_page(session, query, limit=limit, cursor=cursor)
    return TuningList(
        items=[TuningSummary(**service.summary(r)) for r in page.rows], next_cursor=page.next_cursor
    )


@router.get("/{study_id}", response_model=TuningPublic)
def get_tuning(study_id: str, session: SessionDep, tenant: CurrentTenant) -> TuningPublic:
    return tuning_public(session, service.get_for_tenant(session, tenant, study_id))


@router.post(
    "/{study_id}/cancel",
    response_model=TuningPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={409: {"description": "the study has already ended (its status is named)"}},
)
def cancel_tuning(
    study_id: str, session: SessionDep, settings: SettingsDep, tenant: CurrentTenant
) -> TuningPublic:
    return tuning_public(session, service.cancel(session, settings, tenant, study_id))


@router.delete(
    "/{study_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        409: {
            "description": "the study has not ended (cancel it first), or a job or tuning study that "
            "warm-starts from one of its trial jobs still needs it (named)"
        }
    },
)
def delete_tuning(
    study_id: str, session: SessionDep, settings: SettingsDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    """Delete an ended study with its trial jobs, their rows and stored files, and its Optuna study."""
    delete_study(session, storage, tenant, study_id, database_url=settings.database_url)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{study_id}/report",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "a self-contained page (works offline)"}},
)
def tuning_report_page(
    study_id: str,
    session: SessionDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    download: Annotated[bool, Query(description="send as an attachment")] = False,
) -> HTMLResponse:
    row = service.get_for_tenant(session, tenant, study_id)
    session.commit()  # end the read transaction: Optuna reads through its own connections
    spec = row.spec or {}
    objective = spec.get("objective") or {}
    meta = {
        "id": row.id, "status": row.status, "dataset": spec.get("dataset"), "metric": objective.get("metric"),
        "direction": objective.get("direction"), "constraint": objective.get("constraint"),
        "sampler": spec.get("sampler"), "pruner": spec.get("pruner"), "seed": spec.get("seed"),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }  # fmt: skip
    html = render_tuning_report(meta, study_report(row, settings.database_url))
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
    if download:
        headers["Content-Disposition"] = f'attachment; filename="tuning-{row.id}.html"'
    return HTMLResponse(html, headers=headers)
