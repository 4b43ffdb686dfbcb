"""Datasets: upload (multipart), list, built-in references, get, delete.

`GET /v1/datasets` lists the tenant's uploads; the built-in datasets (usable as `builtin:<name>` in a job
without any upload) are listed separately at `GET /v1/datasets/builtin`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from starlette.concurrency import run_in_threadpool

from api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.schemas import BuiltinDatasetList, BuiltinDatasetPublic, DatasetList, DatasetPublic
from core.data import BUILTIN_DATASETS
from core.dataset_store import (
    BUILTIN_PREFIX,
    builtin_info,
    delete_dataset_objects,
    get_dataset_row,
    store_upload,
)
from core.db.jobs import ACTIVE
from core.db.models import Dataset, Job
from core.errors import Conflict

router = APIRouter(prefix=f"{API_PREFIX}/datasets", tags=["datasets"])

_BUILTIN_DESCRIPTIONS = {
    "digits": "8x8 handwritten digits as 64 values in [0, 1]; classes '0'..'9' (scikit-learn)",
    "digits-images": "the same digits as (1, 8, 8) images, for the CNN model",
}


def dataset_public(row: Dataset) -> DatasetPublic:
    return DatasetPublic(
        id=row.id,
        name=row.name,
        format=row.format,
        classes=list(row.classes),
        class_counts=list(row.class_counts),
        num_classes=len(row.classes),
        num_samples=row.num_samples,
        feature_shape=list(row.feature_shape),
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        stored_bytes=row.stored_bytes,
        created_at=row.created_at,
    )


@router.post(
    "",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": DatasetPublic, "description": "the same bytes were uploaded before: that dataset"},
        413: {"description": "the file is larger than SIMTRAIN_MAX_UPLOAD_BYTES"},
        422: {"description": "the file cannot be used (the message names the field)"},
        429: {"description": "the tenant's stored datasets would pass its quota; see Retry-After"},
    },
)
async def upload_dataset(
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    file: Annotated[UploadFile, File(description="a .npz, .csv, .parquet or .zip (image folder) file")],
    name: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    label_column: Annotated[str | None, Form(min_length=1, max_length=100)] = None,
):
    try:
        row, created = await run_in_threadpool(
            store_upload,
            session,
            storage,
            settings,
            tenant,
            file.file,
            file.filename or "",
            name=name,
            label_column=label_column,
        )
    finally:
        await file.close()
    body = dataset_public(row).model_dump(mode="json")
    return JSONResponse(body, status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


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
    responses={409: {"description": "a queued or running job uses the dataset"}},
)
def delete_dataset(
    dataset_id: str, session: SessionDep, storage: StorageDep, tenant: CurrentTenant
) -> Response:
    row = get_dataset_row(session, tenant, dataset_id[:64])
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
