"""A job's kept checkpoints: list them, and download one as `model.safetensors` + `model.json`.

    GET /v1/jobs/{id}/checkpoints                            newest epoch first, with why each is kept
    GET /v1/jobs/{id}/checkpoints/{epoch}/model.safetensors  that epoch's model weights (never a pickle)
    GET /v1/jobs/{id}/checkpoints/{epoch}/model.json         the job's model.json, plus "checkpoint"

The listing reads the checkpoints' metadata only (`core.checkpoint`); a download loads the one checkpoint
(`weights_only`), takes its model state and writes it with the `safetensors` library, as the job's final
`model.safetensors` is written. Another tenant's job, and an epoch that is not kept, are 404.

Both downloads are conditional, as the artifacts are: the ETag is the quoted SHA-256 of the bytes sent,
and an If-None-Match that matches it (`*`, a list, `W/` compared weakly) is 304 with no body. The weights'
bytes are derived from the checkpoint, so their digest is not in the metadata (whose `sha256` is the
checkpoint payload's); it is computed once per payload and process and remembered under the payload's
sha256, so a conditional request for weights already sent reads the metadata only and loads nothing.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Response
from pydantic import BaseModel

from api.deps import CurrentTenant, SessionDep, StorageDep
from api.downloads import attachment_headers, download_responses, etag_matches, not_modified, sha256_etag
from api.routes import API_PREFIX
from api.session_route import SessionReleasingRoute
from core.checkpoint import CorruptCheckpoint, Retention, decode_checkpoint, job_checkpoints
from core.db import jobs as jobstate
from core.errors import NotFound

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["checkpoints"], route_class=SessionReleasingRoute)

Epoch = Annotated[int, Path(ge=0, le=10**6, description="the checkpoint's epoch")]
IfNoneMatch = Annotated[
    str | None, Header(alias="If-None-Match", max_length=1024, description="ETags held; `*` for any")
]
_KNOWN_MAX = 1024  # remembered weights ETags (one short string each)
_known: OrderedDict[str, str] = OrderedDict()  # checkpoint payload sha256 -> its weights' ETag
_known_lock = threading.Lock()


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


def _load(storage, job_id: str, epoch: int) -> tuple[str, dict]:
    """(sha256 of the payload, state) of a kept checkpoint of the job `job_id`, or NotFound."""
    store = job_checkpoints(storage, job_id)
    try:
        header, state = decode_checkpoint(storage.get_bytes(store.key(epoch)))
    except FileNotFoundError:
        raise _not_kept(job_id, epoch) from None
    except CorruptCheckpoint as e:
        raise NotFound(f"the checkpoint of epoch {epoch} of job {job_id} is unusable: {e}") from None
    return str(header["sha256"]), state


def _known_etag(storage, job_id: str, epoch: int) -> str | None:
    """The weights' ETag of a kept checkpoint when this process has sent them (metadata read only)."""
    store = job_checkpoints(storage, job_id)
    if epoch not in store.epochs():
        return None
    payload = (store.meta(epoch) or {}).get("sha256")
    with _known_lock:
        return _known.get(payload) if isinstance(payload, str) else None


def _remember_etag(payload: str, etag: str) -> None:
    with _known_lock:
        _known[payload] = etag
        _known.move_to_end(payload)
        while len(_known) > _KNOWN_MAX:
            _known.popitem(last=False)


def _not_kept(job_id: str, epoch: int) -> NotFound:
    return NotFound(
        f"job {job_id} keeps no checkpoint of epoch {epoch} (GET /v1/jobs/{job_id}/checkpoints lists them)",
        details=[{"loc": ["epoch"], "msg": "not a kept checkpoint"}],
    )


def _attachment(
    data: bytes, media_type: str, filename: str, if_none_match: str | None, etag: str | None = None
) -> Response:
    """`data` as the attachment `filename` tagged `etag` (default: its SHA-256), or 304 on a match."""
    etag = etag or sha256_etag(data)
    if etag_matches(if_none_match, etag):
        return not_modified(etag)
    return Response(data, media_type=media_type, headers=attachment_headers(etag, filename))


def _download_route(name: str, media_type: str, description: str):
    """The GET route of the file `name` of a checkpoint."""
    not_found = "no such job, or no kept checkpoint of that epoch"
    return router.get(
        f"/{{job_id}}/checkpoints/{{epoch}}/{name}",
        response_class=Response,
        responses=download_responses(
            media_type, f"{description}; ETag is its SHA-256", not_found, conditional=True
        ),
    )


@_download_route("model.safetensors", "application/octet-stream", "the checkpoint's weights")
def checkpoint_weights(
    job_id: str,
    epoch: Epoch,
    session: SessionDep,
    storage: StorageDep,
    tenant: CurrentTenant,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The model state of the checkpoint of `epoch` as safetensors (the tensors of the job's final
    `model.safetensors`, at that epoch)."""
    from safetensors.torch import save as save_safetensors

    job = jobstate.get_for_tenant(session, tenant, job_id)
    session.commit()  # no transaction held while the checkpoint is read
    known = _known_etag(storage, job.id, epoch) if if_none_match else None
    if known and etag_matches(if_none_match, known):
        return not_modified(known)
    payload, state = _load(storage, job.id, epoch)
    model = state.get("model")
    if not isinstance(model, dict) or not model:
        raise NotFound(f"the checkpoint of epoch {epoch} of job {job.id} holds no model weights")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.items()}
    data = save_safetensors(tensors, metadata={"format": "simtrain.model"})  # one key: stable bytes
    etag = sha256_etag(data)
    _remember_etag(payload, etag)
    name = f"model-epoch{epoch}.safetensors"
    return _attachment(data, "application/octet-stream", name, if_none_match, etag)


@_download_route("model.json", "application/json", "what rebuilds the network")
def checkpoint_model_json(
    job_id: str,
    epoch: Epoch,
    session: SessionDep,
    storage: StorageDep,
    tenant: CurrentTenant,
    if_none_match: IfNoneMatch = None,
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
    return _attachment(data, "application/json", f"model-epoch{epoch}.json", if_none_match)
