"""Uploaded datasets: store one (hash, parse, canonical .npz in storage, a `datasets` row) and open one.

An upload is copied to a temporary file while its SHA-256 is computed and its size bounded; the same
bytes uploaded again by the same tenant return the existing dataset. The file is parsed by
`core.data.parse_upload` (every problem is a `DatasetError` naming the field) and stored as the
canonical `.npz` at `datasets/{tenant_id}/{dataset_id}.npz`. Nothing is stored when parsing fails, and
the temporary files are always removed.

`open_dataset` is what the worker (and the API, for predictions) uses to get an `ArrayDataset` back from a
job's `dataset_ref`: `builtin:<name>` loads a built-in dataset, anything else is an uploaded dataset's id.

    ds_row, created = store_upload(session, storage, settings, tenant_id, fileobj, "flowers.zip")
    ds = open_dataset(session, storage, tenant_id, job.dataset_ref)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.data import (
    BUILTIN_DATASETS,
    ArrayDataset,
    UploadLimits,
    load_builtin,
    load_npz,
    parse_upload,
    save_npz,
)
from core.data.uploads import SUPPORTED_EXTENSIONS
from core.db.models import Dataset
from core.db.types import new_id, now
from core.errors import DatasetError, NotFound, PayloadTooLarge, RateLimited
from core.settings import Settings
from core.storage import Storage

__all__ = [
    "BUILTIN_PREFIX",
    "DatasetInfo",
    "StorageQuotaExceeded",
    "builtin_info",
    "dataset_info",
    "delete_dataset_objects",
    "get_dataset_row",
    "open_dataset",
    "storage_key_for",
    "store_upload",
]

BUILTIN_PREFIX = "builtin:"
CHUNK = 1 << 20
MAX_CLASSES_DEFAULT = 1000


class StorageQuotaExceeded(RateLimited):
    """The tenant's stored datasets would pass its quota: 429 with Retry-After (delete some, or wait)."""

    code = "storage_quota_exceeded"


@dataclass(frozen=True)
class DatasetInfo:
    """What a job needs to know about its dataset without loading it."""

    ref: str
    classes: list[str]
    feature_shape: list[int]
    num_samples: int


def storage_key_for(tenant_id: str, dataset_id: str) -> str:
    return f"datasets/{tenant_id}/{dataset_id}.npz"


def _max_classes() -> int:
    try:
        from core.similarity import MAX_CLASSES

        return int(MAX_CLASSES)
    except ImportError:  # pragma: no cover - the similarity package is always there in a full install
        return MAX_CLASSES_DEFAULT


def _copy_bounded(src: BinaryIO, dst: BinaryIO, max_bytes: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    while True:
        chunk = src.read(CHUNK)
        if not chunk:
            break
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(
                f"the upload is larger than the limit of {max_bytes} bytes", details={"limit": max_bytes}
            )
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest(), total


def _format_of(filename: str) -> str:
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DatasetError(
            "file",
            f"unsupported file type {suffix or '(none)'!r}; use one of {', '.join(SUPPORTED_EXTENSIONS)}",
        )
    return suffix[1:]


def _tmp_dir(settings: Settings) -> str | None:
    """A scratch directory on the same disk as the home when it exists (big uploads), else the default."""
    path = settings.home / "tmp"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    except OSError:
        return None


def store_upload(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant_id: str,
    fileobj: BinaryIO,
    filename: str,
    *,
    name: str | None = None,
    label_column: str | None = None,
) -> tuple[Dataset, bool]:
    """Store an uploaded dataset for `tenant_id`. Returns (row, created); created is False for a duplicate."""
    filename = (filename or "").strip()
    if not filename:
        raise DatasetError("file", "the upload has no file name (needed to tell its format)")
    fmt = _format_of(filename)
    tmpdir = _tmp_dir(settings)
    with contextlib.ExitStack() as scratch:  # the temporary files go, whatever happens
        upload_path = _scratch_file(scratch, tmpdir, "upload-", "." + fmt)
        sha256, size = _receive(fileobj, upload_path, settings.max_upload_bytes)
        existing = _find_by_hash(session, tenant_id, sha256)
        if existing is not None:
            return existing, False

        ds = parse_upload(Path(upload_path), filename, limits=_limits(settings, label_column))
        npz_path = _scratch_file(scratch, tmpdir, "dataset-", ".npz")
        save_npz(ds, npz_path)
        stored_bytes = os.path.getsize(npz_path)
        _check_quota(session, settings, tenant_id, stored_bytes)

        display_name = (name or PurePosixPath(filename.replace("\\", "/")).name)[:200]
        row = _dataset_row(tenant_id, display_name, fmt, sha256, size, ds, stored_bytes)
        return _store_row(session, storage, row, npz_path)


def _scratch_file(scratch: contextlib.ExitStack, tmpdir: str | None, prefix: str, suffix: str) -> str:
    """A new empty temporary file, removed when `scratch` closes."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=tmpdir)
    scratch.callback(Path(path).unlink, missing_ok=True)
    os.close(fd)
    return path


def _receive(fileobj: BinaryIO, path: str, max_bytes: int) -> tuple[str, int]:
    """Copy the upload to `path`: (sha256, size); PayloadTooLarge past `max_bytes`, DatasetError if empty."""
    with open(path, "wb") as out:
        sha256, size = _copy_bounded(fileobj, out, max_bytes)
    if size == 0:
        raise DatasetError("file", "the file is empty")
    return sha256, size


def _find_by_hash(session: Session, tenant_id: str, sha256: str) -> Dataset | None:
    return session.execute(
        select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256)
    ).scalar_one_or_none()


def _limits(settings: Settings, label_column: str | None) -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_classes=_max_classes(),
        label_column=label_column or "label",
    )


def _check_quota(session: Session, settings: Settings, tenant_id: str, stored_bytes: int) -> None:
    """StorageQuotaExceeded when `stored_bytes` more would pass the tenant's quota."""
    used = session.execute(
        select(func.coalesce(func.sum(Dataset.stored_bytes), 0)).where(Dataset.tenant_id == tenant_id)
    ).scalar_one()
    quota = settings.max_stored_bytes_per_tenant
    if int(used) + stored_bytes > quota:
        raise StorageQuotaExceeded(
            f"storing this dataset ({stored_bytes} bytes) would pass the tenant's quota of "
            f"{quota} bytes ({int(used)} used); delete datasets first",
            details={"used": int(used), "quota": quota},
            retry_after=60,
        )


def _dataset_row(
    tenant_id: str, name: str, fmt: str, sha256: str, size: int, ds: ArrayDataset, stored_bytes: int
) -> Dataset:
    dataset_id = new_id()
    return Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        name=name,
        format=fmt,
        sha256=sha256,
        size_bytes=size,
        num_samples=ds.num_samples,
        feature_shape=list(ds.feature_shape),
        classes=list(ds.classes),
        class_counts=ds.class_counts,
        storage_key=storage_key_for(tenant_id, dataset_id),
        stored_bytes=stored_bytes,
        created_at=now(),
    )


def _store_row(session: Session, storage: Storage, row: Dataset, npz_path: str) -> tuple[Dataset, bool]:
    """Upload the canonical file and commit its row; the same bytes stored concurrently win instead."""
    key, tenant_id, sha256 = row.storage_key, row.tenant_id, row.sha256
    storage.put_file(key, npz_path)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # the same bytes uploaded concurrently: keep the other one
        session.rollback()
        storage.delete(key)
        existing = _find_by_hash(session, tenant_id, sha256)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        session.rollback()
        storage.delete(key)
        raise
    return row, True


def get_dataset_row(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    """The tenant's uploaded dataset, or NotFound (also for another tenant's id)."""
    row = session.execute(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"dataset {dataset_id!r} not found", details=[{"loc": ["dataset"], "msg": "not found"}]
        )
    return row


def _builtin_name(ref: str) -> str:
    name = ref[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_DATASETS:
        raise NotFound(
            f"unknown built-in dataset {ref!r}; choose from {[BUILTIN_PREFIX + n for n in BUILTIN_DATASETS]}",
            details=[{"loc": ["dataset"], "msg": "unknown built-in dataset"}],
        )
    return name


@lru_cache(maxsize=16)
def builtin_info(name: str) -> DatasetInfo:
    """Classes and shapes of a built-in dataset (loaded once per process)."""
    ds = load_builtin(name)
    return DatasetInfo(BUILTIN_PREFIX + name, list(ds.classes), list(ds.feature_shape), ds.num_samples)


def dataset_info(session: Session, tenant_id: str, ref: str) -> DatasetInfo:
    """Classes and feature shape of `ref` (built-in or the tenant's upload) without reading its data."""
    if ref.startswith(BUILTIN_PREFIX):
        return builtin_info(_builtin_name(ref))
    row = get_dataset_row(session, tenant_id, ref)
    return DatasetInfo(ref, list(row.classes), list(row.feature_shape), row.num_samples)


def open_dataset(session: Session, storage: Storage, tenant_id: str, dataset_ref: str) -> ArrayDataset:
    """Load the dataset a job refers to: `builtin:<name>` or the id of the tenant's uploaded dataset."""
    if dataset_ref.startswith(BUILTIN_PREFIX):
        return load_builtin(_builtin_name(dataset_ref))
    row = get_dataset_row(session, tenant_id, dataset_ref)
    fd, tmp = tempfile.mkstemp(prefix="dataset-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                src = storage.open(row.storage_key)
            except FileNotFoundError as e:
                raise DatasetError("dataset", f"the stored data of dataset {dataset_ref!r} is missing") from e
            with src:
                shutil.copyfileobj(src, out, CHUNK)
        return load_npz(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def delete_dataset_objects(storage: Storage, row: Dataset) -> None:
    """Remove the stored data of a dataset row (the row itself is the caller's)."""
    storage.delete(row.storage_key)
