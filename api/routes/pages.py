"""Browser pages (no authentication: they hold no data; their scripts call the JSON API with the API key
the user types, kept in sessionStorage) and the static files they load.

- `GET /ui/jobs`: jobs and comparisons with live progress, a job's curves and confusion matrix, the
  comparison reports (`api.ui.render_jobs_page`, rendered once).
- `GET /static/{name}`: the files of `api.ui.STATIC_DIR` (`api/ui/static/`: the pages' CSS and JavaScript,
  the vendored Chart.js UMD build and its licence). The jobs page links them with a `?v=<content hash>`
  query, so the hour they may be cached never outlives an upgrade.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from api.ui import STATIC_DIR, render_jobs_page
from core.errors import NotFound

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


@lru_cache(maxsize=1)
def _jobs_page() -> str:
    return render_jobs_page(static_base="/static", api_base="/v1")


@lru_cache(maxsize=1)
def _static_files() -> dict[str, Path]:
    return {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}


@router.get("/ui", response_class=RedirectResponse)
def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/ui/jobs", response_class=HTMLResponse)
def jobs_page() -> HTMLResponse:
    return HTMLResponse(_jobs_page(), headers=PAGE_HEADERS)


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
