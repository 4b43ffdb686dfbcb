"""Datasets: upload (multipart, streamed), list, built-in references, get, delete.

`POST /v1/datasets` reads its body as it streams in (`api.upload_form`): the file goes straight to a
scratch file on disk (never whole in memory), bounded by `SIMTRAIN_MAX_UPLOAD_BYTES`; converting it to
the stored arrays (`core.dataset_store.store_received`) then runs in a worker thread, under its own
deadline (`SIMTRAIN_UPLOAD_TIMEOUT_S`) instead of the request deadline. A client that disconnects
mid-body leaves nothing behind. No database connection is held while the body streams in.

The same route with a JSON body (`DatasetReferenceCreate`: `uri`, optional `sha256`, `format` and the upload
options) registers a dataset given by URI (`core.dataset_import.register_reference`): the URI is checked
against the allow-list at once (422 naming `uri`), the dataset is stored as `importing` and the worker
imports it (202); the same reference again is the same dataset (200). It cannot be deleted while it
imports (409).

`GET /v1/datasets` lists the tenant's uploads; the built-in datasets (usable as `builtin:<name>` in a job
without any upload) are listed separately at `GET /v1/datasets/builtin`.
"""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deadline import extend_deadline
from api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.schemas import (
    BuiltinDatasetList,
    BuiltinDatasetPublic,
    DatasetList,
    DatasetPublic,
    DatasetReferenceCreate,
    UploadForm,
    dataset_request_body,
)
from api.session_route import SessionReleasingRoute
from api.upload_form import ReceivedForm, receive_form
from core.data import BUILTIN_DATASETS, parse_image_size
from core.dataset_import import DatasetReference, register_reference
from core.dataset_store import (
    BUILTIN_PREFIX,
    UploadOptions,
    builtin_info,
    delete_dataset_objects,
    get_dataset_row,
    scratch_dir,
    store_received,
)
from core.db.jobs import ACTIVE
from core.db.models import Dataset, DatasetStatus, Job
from core.errors import Conflict, DatasetError
from core.settings import Settings

router = APIRouter(prefix=f"{API_PREFIX}/datasets", tags=["datasets"], route_class=SessionReleasingRoute)

_BUILTIN_DESCRIPTIONS = {
    "digits": "8x8 handwritten digits as 64 values in [0, 1]; classes '0'..'9' (scikit-learn)",
    "digits-images": "the same digits as (1, 8, 8) images, for the CNN model",
}


def dataset_public(row: Dataset) -> DatasetPublic:
    return DatasetPublic(
        id=row.id,
        name=row.name,
        format=row.format,
        status=row.status,
        classes=list(row.classes),
        class_counts=list(row.class_counts),
        num_classes=len(row.classes),
        num_samples=row.num_samples,
        feature_shape=list(row.feature_shape),
        dtype=row.dtype,
        preprocessing=row.preprocessing,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        stored_bytes=row.stored_bytes,
        source_uri=row.source_uri,
        error=row.error,
        created_at=row.created_at,
    )


@router.post(
    "",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": dataset_request_body()},
    responses={
        200: {
            "model": DatasetPublic,
            "description": "the same file with the same options was uploaded before (JSON: the same URI, "
            "sha256 and options)",
        },
        202: {
            "model": DatasetPublic,
            "description": "JSON: the dataset is registered; the worker imports it",
        },
        413: {"description": "the file is larger than SIMTRAIN_MAX_UPLOAD_BYTES"},
        422: {"description": "the file or a field cannot be used (the message names the field)"},
        429: {"description": "the tenant's stored datasets would pass its quota; see Retry-After"},
    },
)
async def upload_dataset(
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
):
    """Upload a dataset: the file part `file` (+ `labels` for an .npy), and the fields of `UploadForm`;
    or, as JSON, a `DatasetReferenceCreate` to import from its URI."""
    if _is_json(request):
        return await _register_reference(request, session, settings, tenant)
    extend_deadline(request.scope, settings.upload_timeout_s)
    await run_in_threadpool(session.commit)  # no connection held while the body streams in
    with contextlib.ExitStack() as scratch:
        form = await receive_form(
            request,
            file_fields=("file", "labels"),
            scratch=scratch,
            directory=scratch_dir(settings),
            max_file_bytes=settings.max_upload_bytes,
        )
        options = _upload_options(form)
        row, created = await run_in_threadpool(
            store_received,
            session,
            storage,
            settings,
            tenant,
            form.files["file"],
            options,
            form.files.get("labels"),
        )
    body = dataset_public(row).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _upload_options(form: ReceivedForm) -> UploadOptions:
    """The upload's options from its text fields (422 naming the field when one is wrong)."""
    if "file" not in form.files:
        raise DatasetError("file", "field required: the dataset file, as the multipart file part `file`")
    try:
        fields = UploadForm.model_validate(form.fields)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None
    return UploadOptions(
        name=fields.name,
        label_column=fields.label_column,
        image_size=parse_image_size(fields.image_size) if fields.image_size else None,
        resize=fields.resize,
    )


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _register_reference(
    request: Request, session: Session, settings: Settings, tenant: str
) -> JSONResponse:
    """The JSON body: register the dataset given by URI (202: its import is queued; 200: known before)."""
    fields = _reference_fields(await request.body())
    options = UploadOptions(
        name=fields.name,
        label_column=fields.label_column,
        image_size=parse_image_size(fields.image_size) if fields.image_size is not None else None,
        resize=fields.resize,
    )
    ref = DatasetReference(uri=fields.uri, sha256=fields.sha256, format=fields.format, options=options)
    row, queued = await run_in_threadpool(register_reference, session, settings, tenant, ref)
    body = dataset_public(row).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_202_ACCEPTED if queued else status.HTTP_200_OK)


def _missing(field: str, msg: str) -> dict:
    return {"type": "missing", "loc": ("body", field), "msg": msg, "input": None}


def _reference_fields(raw: bytes) -> DatasetReferenceCreate:
    """The JSON body validated (422 naming the field); without `uri`, 422 naming `file` and `uri`."""
    try:
        data = json.loads(raw)
    except ValueError:
        error = {"type": "json_invalid", "loc": ("body",), "msg": "the body is not valid JSON", "input": None}
        raise RequestValidationError([error]) from None
    if isinstance(data, dict) and "uri" not in data:
        raise RequestValidationError(
            [
                _missing("file", "send the dataset file as multipart/form-data, in a part named `file`"),
                _missing("uri", "or, as JSON, the dataset's `uri`"),
            ]
        )
    try:
        return DatasetReferenceCreate.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(e.errors(include_url=False)) from None


@router.get("", response_model=DatasetList)
def list_datasets(
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: CursorParam = None,
) -> DatasetList:
    query = select(Dataset).where(Dataset.tenant_id == tenant)
    page = keyset_page(session, query, limit=limit, cursor=cursor)
    return DatasetList(items=[dataset_public(r) for r in page.rows], next_cursor=page.next_cursor)


@router.get("/builtin", response_model=BuiltinDatasetList)
def list_builtin(tenant: CurrentTenant) -> BuiltinDatasetList:
    items = []
    for name in BUILTIN_DATASETS:
        info = builtin_info(name)
        items.append(
            BuiltinDatasetPublic(
                ref=BUILTIN_PREFIX + name,
                name=name,
                description=_BUILTIN_DESCRIPTIONS.get(name, ""),
                classes=info.classes,
                num_samples=info.num_samples,
                feature_shape=info.feature_shape,
            )
        )
    return BuiltinDatasetList(items=items)


@router.get("/{dataset_id}", response_model=DatasetPublic)
def get_dataset(dataset_id: str, session: SessionDep, tenant: CurrentTenant) -> DatasetPublic:
    return dataset_public(get_dataset_row(session, tenant, dataset_id[:64]))


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={409: {"description": "a queued or running job uses the dataset, or it is still importing"}},
)
def delete_dataset(
    dataset_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    row = get_dataset_row(session, tenant, dataset_id[:64])
    if row.status == DatasetStatus.importing.value:
        raise Conflict(
            f"dataset {row.id} is still importing; delete it once it is ready or failed",
            details={"status": row.status},
        )
    active = (
        session.execute(
            select(Job.id)
            .where(Job.tenant_id == tenant, Job.dataset_ref == row.id, Job.status.in_(ACTIVE))
            .limit(5)
        )
        .scalars()
        .all()
    )
    if active:
        raise Conflict(
            f"dataset {row.id} is used by {len(active)} queued or running job(s); cancel them first",
            details={"jobs": list(active)},
        )
    session.execute(delete(Dataset).where(Dataset.id == row.id, Dataset.tenant_id == tenant))
    session.commit()
    delete_dataset_objects(storage, row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
