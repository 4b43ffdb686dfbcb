"""Uploaded warm-start weights: upload (multipart safetensors), list, get, delete.

    curl -F file=@model.safetensors -F name=resnet -F 'classes=["cat","dog"]' -H "Authorization: Bearer $KEY" \
         http://localhost:8000/v1/weights
    # then a job with "model": {"kind": "timm", "architecture": "resnet18", "init": {"weights": "<id>"}}

The body streams to a scratch file on disk (`api.upload_form`, bounded by `SIMTRAIN_MAX_WEIGHTS_BYTES`,
under the upload deadline `SIMTRAIN_UPLOAD_TIMEOUT_S`, no database connection held meanwhile). Only
safetensors is accepted; a pickle or a `torch.save` zip (`.pt` / `.pth`) is refused with 422 naming
`file` without being unpickled (see core/weights_store.py). `classes` (optional, a JSON list) are the
classes the weights' head was trained for: a job on the same classes in the same order keeps the head.
Everything is tenant-scoped: another tenant's id is the same 404 as an id nobody has.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deadline import extend_deadline
from api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.session_route import SessionReleasingRoute
from api.upload_form import ReceivedForm, receive_form
from core.data.receive import UploadedFile
from core.dataset_store import scratch_dir
from core.db.models import Weights
from core.weights_store import WeightsFileError, delete_weights, get_weights_row, parse_classes, store_weights

__all__ = ["WeightsForm", "WeightsList", "WeightsPublic", "router"]

router = APIRouter(prefix=f"{API_PREFIX}/weights", tags=["weights"], route_class=SessionReleasingRoute)

MAX_CLASSES_FIELD = 256 * 1024  # the `classes` field: up to MAX_CLASSES names of up to 100 characters


class WeightsPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(max_length=36)
    name: str = Field(max_length=200)
    sha256: str = Field(max_length=64, description="SHA-256 of the uploaded file")
    size_bytes: int = Field(description="size of the stored safetensors file")
    num_tensors: int
    num_parameters: int = Field(description="the number of values in all tensors")
    dtypes: list[str] = Field(description="the safetensors dtypes present (F32, F16, I64, ...)")
    classes: list[str] | None = Field(description="the classes of the weights' head, when given")
    created_at: datetime


class WeightsList(BaseModel):
    items: list[WeightsPublic]
    next_cursor: str | None = Field(default=None, max_length=200)


class WeightsForm(BaseModel):
    """The text fields of a weights upload (multipart/form-data, beside the file part `file`)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, min_length=1, max_length=200, description="default: the file name")
    classes: str | None = Field(
        default=None,
        max_length=MAX_CLASSES_FIELD,
        description='the classes of the weights\' head, a JSON list: ["cat", "dog"] (default: unknown; '
        "a job then re-initialises the head)",
    )


def _request_body() -> dict[str, Any]:
    """The OpenAPI requestBody of POST /v1/weights (multipart/form-data)."""
    schema = WeightsForm.model_json_schema()
    file = {"type": "string", "format": "binary", "description": "a .safetensors file (a state dict)"}
    schema["properties"] = {"file": file, **schema["properties"]}
    schema["required"] = ["file"]
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _display_name(name: str | None, filename: str | None) -> str:
    if name:
        return name
    base = PurePosixPath((filename or "").replace("\\", "/")).name
    return base or "weights.safetensors"


def _form_fields(form: ReceivedForm) -> tuple[UploadedFile, str, list[str] | None]:
    """(the file, the display name, the classes) of the upload; 422 naming the field when one is wrong."""
    if "file" not in form.files:
        raise WeightsFileError("file", "field required: the weights, as the multipart file part `file`")
    try:
        fields = WeightsForm.model_validate(form.fields)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None
    upload = form.files["file"]
    return upload, _display_name(fields.name, upload.filename), parse_classes(fields.classes)


@router.post(
    "",
    response_model=WeightsPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": _request_body()},
    responses={
        413: {"description": "the file is larger than SIMTRAIN_MAX_WEIGHTS_BYTES"},
        422: {"description": "not a safetensors file (a pickle / .pt is refused), or bad `classes`"},
        429: {"description": "the tenant's stored bytes would pass its quota; see Retry-After"},
    },
)
async def upload_weights(
    request: Request, session: SessionDep, storage: StorageDep, settings: SettingsDep, tenant: CurrentTenant
) -> WeightsPublic:
    """Upload a safetensors file (the part `file`), optionally with `name` and `classes`."""
    extend_deadline(request.scope, settings.upload_timeout_s)
    await run_in_threadpool(session.commit)  # no connection held while the body streams in
    with contextlib.ExitStack() as scratch:
        form = await receive_form(
            request,
            file_fields=("file",),
            scratch=scratch,
            directory=scratch_dir(settings),
            max_file_bytes=settings.max_weights_bytes,
            max_field_bytes=MAX_CLASSES_FIELD,
        )
        upload, name, classes = _form_fields(form)
        row = await run_in_threadpool(
            store_weights, session, storage, settings, tenant, upload, name=name, classes=classes
        )
    return WeightsPublic.model_validate(row)


@router.get("", response_model=WeightsList)
def list_weights(
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorParam = None,
) -> WeightsList:
    page = keyset_page(
        session, select(Weights).where(Weights.tenant_id == tenant), limit=limit, cursor=cursor
    )
    return WeightsList(
        items=[WeightsPublic.model_validate(r) for r in page.rows], next_cursor=page.next_cursor
    )


@router.get("/{weights_id}", response_model=WeightsPublic)
def get_weights(weights_id: str, session: SessionDep, tenant: CurrentTenant) -> WeightsPublic:
    return WeightsPublic.model_validate(get_weights_row(session, tenant, weights_id))


@router.delete(
    "/{weights_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "a queued or running job warm-starts from these weights"}},
)
def remove_weights(
    weights_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    delete_weights(session, storage, tenant, weights_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
