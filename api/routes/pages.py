"""The web console's own pages and the static files of every page. The pages need no authentication:
they hold no data. Their scripts (`console.js` and the page's script) call the JSON API with the API key
the user signed in with, kept in the tab's sessionStorage; without one, or when the API answers 401, a
page sends the browser to the sign-in page.

- `GET /ui/signin`: paste the API key; it is checked with an authenticated read, then kept. `?signout=1`
  forgets it.
- `GET /ui/jobs`: the tenant's jobs, filtered by status, searched by name or id, live, paged with "more".
- `GET /ui/jobs/{job_id}`: one job: its spec, live status and curves (the job's event stream), events,
  final metrics, confusion matrix, checkpoints, artifacts (downloads), cancel / pause / resume.
- `GET /static/{name}`: the files of `api.ui.STATIC_DIR` (`api/ui/static/`: the pages' CSS and JavaScript,
  the vendored Chart.js UMD build and its licence). Pages link them with a `?v=<content hash>` query, so
  the hour they may be cached never outlives an upgrade.

Every page carries `api.ui.PAGE_HEADERS` (no-store, no framing, a Content-Security-Policy that allows
only the origin's own scripts). The other console pages (new job, comparisons, tuning) are in
`api/routes/console_pages.py`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from api.session_route import SessionReleasingRoute
from api.ui import PAGE_HEADERS, STATIC_DIR, render_console_page
from core.errors import NotFound

__all__ = ["router"]

router = APIRouter(include_in_schema=False, route_class=SessionReleasingRoute)

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


@lru_cache(maxsize=4)
def _static_page(template: str, title: str) -> str:
    return render_console_page(template, title=title)


@lru_cache(maxsize=1)
def _static_files() -> dict[str, Path]:
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}


def _page(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/ui", response_class=RedirectResponse)
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/ui/signin", response_class=HTMLResponse)
def signin_page() -> HTMLResponse:
    return _page(_static_page("signin.html", "Sign in · simtrain"))


@router.get("/ui/jobs", response_class=HTMLResponse)
def jobs_page() -> HTMLResponse:
    return _page(_static_page("jobs.html", "Jobs · simtrain"))


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job_page(job_id: Annotated[str, PathParam(max_length=64)]) -> HTMLResponse:
    # the id goes to the page as escaped JSON; the page asks the API, which answers 404 for a job that is
    # not the signed-in tenant's
    html = render_console_page("job.html", title=f"Job {job_id} · simtrain", config={"job_id": job_id})
    return _page(html)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = _static_files().get(name)  # only the files that are there: no paths, no traversal
    if path is None:
        raise NotFound(f"no static file {name[:100]!r}")
    return FileResponse(
        path,
        media_type=CONTENT_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
