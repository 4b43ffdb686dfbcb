"""The console's new-job, comparisons and tuning pages (no authentication: they hold no data; their
scripts call the JSON API with the signed-in API key, as every console page does).

- `GET /ui/new`: the new-job form: a dataset (pick one, or upload a file with a progress bar), classes,
  similarity with a live heatmap preview, loss, model, training; the exact JSON body it will POST to
  `/v1/jobs`, kept up to date; then the job's page.
- `GET /ui/comparisons` and `GET /ui/comparisons/{id}`: the comparisons with their status; one
  comparison's variants, children and, once it has ended, its report.
- `GET /ui/tuning` and `GET /ui/tuning/{id}`: the studies; one study's best trial, trials and report.

The pages are rendered by `api.ui.console_render`. The two detail pages frame the API's offline report
and carry `report_page_headers()` (the console's policy, with the report's inline scripts allowed).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from api.session_route import SessionReleasingRoute
from api.ui import PAGE_HEADERS
from api.ui.console_render import (
    render_comparison_page,
    render_comparisons_page,
    render_new_job_page,
    render_tuning_list_page,
    render_tuning_study_page,
    report_page_headers,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False, route_class=SessionReleasingRoute)

PageId = Annotated[str, PathParam(max_length=64)]


@lru_cache(maxsize=1)
def _new_job_page() -> str:
    return render_new_job_page()


@router.get("/ui/new", response_class=HTMLResponse)
def new_job_page() -> HTMLResponse:
    return HTMLResponse(_new_job_page(), headers=PAGE_HEADERS)


@router.get("/ui/comparisons", response_class=HTMLResponse)
def comparisons_page() -> HTMLResponse:
    return HTMLResponse(render_comparisons_page(), headers=PAGE_HEADERS)


@router.get("/ui/comparisons/{comparison_id}", response_class=HTMLResponse)
def comparison_page(comparison_id: PageId) -> HTMLResponse:
    # the id reaches the page as escaped JSON; the API answers 404 for another tenant's comparison
    return HTMLResponse(render_comparison_page(comparison_id), headers=report_page_headers())


@router.get("/ui/tuning", response_class=HTMLResponse)
def tuning_list_page() -> HTMLResponse:
    return HTMLResponse(render_tuning_list_page(), headers=PAGE_HEADERS)


@router.get("/ui/tuning/{study_id}", response_class=HTMLResponse)
def tuning_study_page(study_id: PageId) -> HTMLResponse:
    return HTMLResponse(render_tuning_study_page(study_id), headers=report_page_headers())
