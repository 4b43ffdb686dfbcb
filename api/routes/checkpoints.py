"""A job's kept checkpoints: list them, and download one as `model.safetensors` + `model.json`.

    GET /v1/jobs/{id}/checkpoints                            newest epoch first, with why each is kept
    GET /v1/jobs/{id}/checkpoints/{epoch}/model.safetensors  that epoch's model weights (never a pickle)
    GET /v1/jobs/{id}/checkpoints/{epoch}/model.json         the job's model.json, plus "checkpoint"

The listing reads the checkpoints' metadata only (`core.checkpoint`); a download loads the one checkpoint
(`weights_only`), takes its model state and writes it with the `safetensors` library, as the job's final
`model.safetensors` is written. Another tenant's job, and an epoch that is not kept, are 404.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from api.deps import CurrentTenant, SessionDep, StorageDep
from api.downloads import attachment_headers, download_responses, sha256_etag
from api.routes import API_PREFIX
from api.session_route import SessionReleasingRoute
from core.checkpoint import CorruptCheckpoint, Retention, job_checkpoints
from core.db import jobs as jobstate
from core.errors import NotFound

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["checkpoints"], route_class=SessionReleasingRoute)

Epoch = Annotated[int, Path(ge=0, le=10**6, description="the checkpoint's epoch")]


class CheckpointPublic(BaseModel):
    epoch: int
    step: int | None = None
    metrics: dict[str, int | float | None]  # the epoch's validation metrics: val_loss, val_accuracy, ...
    size_bytes: int | None = None
    created_at: datetime | None = None
    kept_as: list[Literal["best", "last", "fallback"]]


class CheckpointList(BaseModel):
    items: list[CheckpointPublic]


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(job_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant):
    """The job's kept checkpoints, newest epoch first; `kept_as`: "best" (by validation loss) and / or
    "last" under its `training.keep_checkpoints`, "fallback" when kept because a newer one is unusable."""
    job = jobstate.get_for_tenant(session, tenant, job_id)
    retention = Retention.for_job(job.spec)
    return CheckpointList(items=job_checkpoints(storage, job.id).listing(retention))


def _load(session, storage, tenant: str, job_id: str, epoch: int) -> tuple[str, dict, dict]:
    """(job id, metadata, state) of a kept checkpoint, or NotFound."""
    job = jobstate.get_for_tenant(session, tenant, job_id)
    session.commit()  # no transaction held while the checkpoint is read
    try:
        meta, state = job_checkpoints(storage, job.id).load(epoch)
    except FileNotFoundError:
        raise _not_kept(job.id, epoch) from None
    except CorruptCheckpoint as e:
        raise NotFound(f"the checkpoint of epoch {epoch} of job {job.id} is unusable: {e}") from None
    return job.id, meta, state


def _not_kept(job_id: str, epoch: int) -> NotFound:
    return NotFound(
        f"job {job_id} keeps no checkpoint of epoch {epoch} (GET /v1/jobs/{job_id}/checkpoints lists them)",
        details=[{"loc": ["epoch"], "msg": "not a kept checkpoint"}],
    )


def _attachment(data: bytes, media_type: str, filename: str) -> Response:
    return Response(data, media_type=media_type, headers=attachment_headers(sha256_etag(data), filename))


def _download_route(name: str, media_type: str, description: str):
    """The GET route of the file `name` of a checkpoint."""
    not_found = "no such job, or no kept checkpoint of that epoch"
    return router.get(
        f"/{{job_id}}/checkpoints/{{epoch}}/{name}",
        response_class=Response,
        responses=download_responses(media_type, description, not_found),
    )


@_download_route("model.safetensors", "application/octet-stream", "the checkpoint's weights")
def checkpoint_weights(
    job_id: str, epoch: Epoch, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    """The model state of the checkpoint of `epoch` as safetensors (the tensors of the job's final
    `model.safetensors`, at that epoch)."""
    from safetensors.torch import save as save_safetensors

    found, _meta, state = _load(session, storage, tenant, job_id, epoch)
    model = state.get("model")
    if not isinstance(model, dict) or not model:
        raise NotFound(f"the checkpoint of epoch {epoch} of job {found} holds no model weights")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.items()}
    data = save_safetensors(tensors, metadata={"format": "simtrain.model"})  # one key: stable bytes
    return _attachment(data, "application/octet-stream", f"model-epoch{epoch}.safetensors")


@_download_route("model.json", "application/json", "what rebuilds the network")
def checkpoint_model_json(
    job_id: str, epoch: Epoch, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    """The model.json of the job (format "simtrain.model") as it was at `epoch`, with "checkpoint":
    its epoch, step, validation metrics and time."""
    job = jobstate.get_for_tenant(session, tenant, job_id)
    store = job_checkpoints(storage, job.id)
    if epoch not in store.epochs():
        raise _not_kept(job.id, epoch)
    meta = store.meta(epoch) or {}
    described = meta.get("model_json")
    if not isinstance(described, dict):
        raise NotFound(f"the checkpoint of epoch {epoch} of job {job.id} has no model description")
    fields = ("epoch", "step", "metrics", "created_at")
    body: dict[str, Any] = {**described, "checkpoint": {k: meta.get(k) for k in fields}}
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    return _attachment(data, "application/json", f"model-epoch{epoch}.json")
