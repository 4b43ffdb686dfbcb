"""A job's artifacts (model weights, ONNX, metrics, plots): list and download (streamed from storage)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from api.deps import CurrentTenant, SessionDep, StorageDep
from api.downloads import attachment_headers, download_responses, etag_matches, not_modified
from api.routes import API_PREFIX
from api.schemas import ArtifactList, ArtifactPublic
from api.session_route import SessionReleasingRoute
from core.db import jobs as jobstate
from core.db.models import JobArtifact
from core.errors import NotFound

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["artifacts"], route_class=SessionReleasingRoute)

ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CHUNK = 256 * 1024


@router.get("/{job_id}/artifacts", response_model=ArtifactList)
def list_artifacts(job_id: str, session: SessionDep, tenant: CurrentTenant) -> ArtifactList:
    job = jobstate.get_for_tenant(session, tenant, job_id)
    rows = session.execute(
        select(JobArtifact).where(JobArtifact.job_id == job.id).order_by(JobArtifact.name)
    ).scalars()
    return ArtifactList(
        items=[
            ArtifactPublic(
                name=r.name,
                size_bytes=r.size_bytes,
                sha256=r.sha256,
                content_type=r.content_type,
                created_at=r.created_at,
            )
            for r in rows
        ]
    )


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses=download_responses(
        "application/octet-stream",
        "the file; ETag is its SHA-256",
        "no such job or artifact",
        conditional=True,
    ),
)
def download_artifact(
    job_id: str,
    name: Annotated[str, Path(max_length=64)],
    session: SessionDep,
    storage: StorageDep,
    tenant: CurrentTenant,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=200)] = None,
) -> Response:
    job = jobstate.get_for_tenant(session, tenant, job_id)
    if not ARTIFACT_NAME.match(name) or ".." in name:
        raise NotFound(f"no artifact named {name!r}")
    row = session.execute(
        select(JobArtifact).where(JobArtifact.job_id == job.id, JobArtifact.name == name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"job {job.id} has no artifact named {name!r}")
    etag = f'"{row.sha256}"'
    if etag_matches(if_none_match, etag):
        return not_modified(etag)
    try:
        size = storage.size(row.storage_key)
        stream = storage.open(row.storage_key)
    except (FileNotFoundError, ValueError) as e:
        raise NotFound(f"the stored file of artifact {name!r} is missing") from e

    def chunks():
        with stream:
            while True:
                block = stream.read(CHUNK)
                if not block:
                    break
                yield block

    return StreamingResponse(
        chunks(),
        media_type=row.content_type or "application/octet-stream",
        headers={"Content-Length": str(size), **attachment_headers(etag, name)},
    )
