"""Uploaded datasets: store one (parse it into the stored form, a `datasets` row) and open one.

An upload arrives as files on local disk (`core.data.receive.UploadedFile`: hashed and bounded while it
streamed in); `store_received` parses it with `core.data.parse_upload`, writing the arrays straight to
a scratch directory (memory holds one row batch), and moves `x.npy`, `y.npy` and `meta.json` into
storage under `datasets/{tenant_id}/{dataset_id}/` (a rename when storage is the local disk). The same
file with the same options (`UploadOptions`: label column, image size, resize) uploaded again by the
same tenant returns the existing dataset. The tenant's stored bytes are bounded (429 past the quota,
checked before the arrays are written; `core.storage_quota` counts datasets, weights and jobs' files).
Nothing is stored when anything fails, and the scratch files are always removed. `store_upload` does the same from a file object.

`open_dataset` is what the worker (and the API) uses to get an `ArrayDataset` back from a job's
`dataset_ref`: `builtin:<name>` loads a built-in dataset, anything else is an uploaded dataset's id. Its
`x` is a read-only `np.memmap`: of the stored file itself on local storage, of a copy in a bounded local
cache (`core.data.local_cache`, keyed by dataset id + sha256, downloaded once) on remote storage.
Datasets stored as one `.npz` by earlier versions still open (in memory).

    options = UploadOptions(image_size=(32, 32), resize="shorter_side")
    row, created = store_received(session, storage, settings, tenant_id, upload, options)
    ds = open_dataset(session, storage, tenant_id, job.dataset_ref)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.data import (
    BUILTIN_DATASETS,
    ArrayDataset,
    OutputTooLarge,
    UploadLimits,
    load_builtin,
    load_npz,
    open_stored,
    parse_upload,
    upload_format,
    write_stored,
)
from core.data.images import DEFAULT_RESIZE
from core.data.local_cache import CacheTooSmall, LocalCache
from core.data.receive import CHUNK, UploadedFile, receive_stream
from core.data.stored import STORED_FILES
from core.db.models import Dataset, DatasetStatus
from core.db.types import new_id, now
from core.errors import DatasetError, NotFound
from core.settings import Settings, get_settings
from core.storage import Storage
from core.storage_quota import StorageQuotaExceeded, check_room, quota_exceeded, stored_bytes_used

__all__ = [
    "BUILTIN_PREFIX",
    "DatasetInfo",
    "StorageQuotaExceeded",
    "UploadOptions",
    "UploadedFile",
    "builtin_info",
    "dataset_info",
    "delete_dataset_objects",
    "get_dataset_row",
    "open_dataset",
    "scratch_dir",
    "storage_key_for",
    "store_received",
    "store_upload",
]

BUILTIN_PREFIX = "builtin:"
MAX_CLASSES_DEFAULT = 1000
MiB = 1024 * 1024


@dataclass(frozen=True)
class DatasetInfo:
    """What a job needs to know about its dataset without loading it."""

    ref: str
    classes: list[str]
    feature_shape: list[int]
    num_samples: int
    dtype: str = "float32"
    preprocessing: dict[str, Any] | None = None


@dataclass(frozen=True)
class UploadOptions:
    """The choices that come with an upload: its display `name`, and what shapes the stored arrays."""

    name: str | None = None
    label_column: str | None = None
    image_size: tuple[int, int] | None = None
    resize: str | None = None

    def options_hash(self, labels: UploadedFile | None = None) -> str:
        """SHA-256 of the options that shape the stored arrays (and of the labels file, if any)."""
        shaping = {
            "label_column": self.label_column or "label",
            "image_size": list(self.image_size) if self.image_size else None,
            "resize": self.resize or DEFAULT_RESIZE,
            "labels_sha256": labels.sha256 if labels else None,
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


def storage_key_for(tenant_id: str, dataset_id: str) -> str:
    """The key of a dataset's `meta.json`; its arrays are stored beside it."""
    return f"datasets/{tenant_id}/{dataset_id}/meta.json"


def _prefix_of(key: str) -> str:
    return key.rsplit("/", 1)[0] + "/"


def _max_classes() -> int:
    try:
        from core.similarity import MAX_CLASSES

        return int(MAX_CLASSES)
    except ImportError:  # pragma: no cover - the similarity package is always there in a full install
        return MAX_CLASSES_DEFAULT


def scratch_dir(settings: Settings) -> str | None:
    """A scratch directory on the same disk as the home when it exists (big uploads), else the default."""
    path = settings.home / "tmp"
    try:
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------- storing


def store_upload(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant_id: str,
    fileobj: BinaryIO,
    filename: str,
    options: UploadOptions | None = None,
) -> tuple[Dataset, bool]:
    """Store an upload given as a readable file object (copied to scratch first); see `store_received`."""
    filename = _check_filename(filename)
    with contextlib.ExitStack() as scratch:
        fd, path = tempfile.mkstemp(
            prefix="upload-", suffix=PurePosixPath(filename).suffix, dir=scratch_dir(settings)
        )
        os.close(fd)
        scratch.callback(Path(path).unlink, missing_ok=True)
        upload = receive_stream(fileobj, Path(path), filename, settings.max_upload_bytes)
        return store_received(session, storage, settings, tenant_id, upload, options or UploadOptions())


def _check_filename(filename: str) -> str:
    filename = (filename or "").strip()
    if not filename:
        raise DatasetError("file", "the upload has no file name (needed to tell its format)")
    upload_format(filename)
    return filename


def store_received(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant_id: str,
    upload: UploadedFile,
    options: UploadOptions,
    labels: UploadedFile | None = None,
) -> tuple[Dataset, bool]:
    """Store the received upload for `tenant_id`. Returns (row, created); created is False for a duplicate."""
    fmt = upload_format(_check_filename(upload.filename))
    if upload.size == 0:
        raise DatasetError("file", "the file is empty")
    options_hash = options.options_hash(labels)
    existing = _find(session, tenant_id, upload.sha256, options_hash)
    if existing is not None:
        return existing, False
    limits = _limits(settings, options, _quota_left(session, settings, tenant_id))
    workdir = Path(tempfile.mkdtemp(prefix="dataset-", dir=scratch_dir(settings)))
    try:
        ds = _parse(upload, labels, workdir, limits)
        stored_bytes = sum(p.stat().st_size for p in write_stored(ds, workdir).values())
        _check_quota(session, settings, tenant_id, stored_bytes)
        display_name = (options.name or PurePosixPath(upload.filename.replace("\\", "/")).name)[:200]
        row = _dataset_row(tenant_id, display_name, fmt, upload, ds, stored_bytes, options_hash)
        del ds  # x maps a file that is about to move
        return _store_row(session, storage, row, workdir)
    except OutputTooLarge as e:  # found before the arrays were written
        raise _quota_exceeded(session, settings, tenant_id, e.nbytes) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _parse(
    upload: UploadedFile, labels: UploadedFile | None, workdir: Path, limits: UploadLimits
) -> ArrayDataset:
    return parse_upload(
        upload.path,
        upload.filename,
        limits=limits,
        workdir=workdir,
        labels=labels.path if labels else None,
        labels_name=labels.filename if labels else "",
    )


def _limits(settings: Settings, options: UploadOptions, stored_bytes_left: int) -> UploadLimits:
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_samples=settings.max_dataset_samples,
        max_classes=_max_classes(),
        max_zip_entries=max(20_000, settings.max_dataset_samples + 10_000),
        # an archive of JPEGs expands to about its own size: the budget follows the upload bound
        max_uncompressed_bytes=max(512 * MiB, 2 * settings.max_upload_bytes),
        max_image_pixels=settings.max_image_pixels,
        max_stored_bytes=max(0, stored_bytes_left),
        image_size=options.image_size,
        resize=options.resize or DEFAULT_RESIZE,
        label_column=options.label_column or "label",
    )


def _find(session: Session, tenant_id: str, sha256: str, options_hash: str) -> Dataset | None:
    return session.execute(
        select(Dataset).where(
            Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256, Dataset.options_hash == options_hash
        )
    ).scalar_one_or_none()


def _quota_left(session: Session, settings: Settings, tenant_id: str) -> int:
    """What the tenant may still store (`core.storage_quota.stored_bytes_used`); negative when over."""
    return settings.max_stored_bytes_per_tenant - stored_bytes_used(session, tenant_id)


def _quota_exceeded(
    session: Session, settings: Settings, tenant_id: str, stored_bytes: int
) -> StorageQuotaExceeded:
    return quota_exceeded(session, settings, tenant_id, stored_bytes, what="this dataset")


def _check_quota(session: Session, settings: Settings, tenant_id: str, stored_bytes: int) -> None:
    """StorageQuotaExceeded when `stored_bytes` more would pass the tenant's quota."""
    check_room(session, settings, tenant_id, stored_bytes, what="this dataset")


def _dataset_row(
    tenant_id: str,
    name: str,
    fmt: str,
    upload: UploadedFile,
    ds: ArrayDataset,
    stored_bytes: int,
    options_hash: str,
) -> Dataset:
    dataset_id = new_id()
    return Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        name=name,
        format=fmt,
        sha256=upload.sha256,
        size_bytes=upload.size,
        num_samples=ds.num_samples,
        feature_shape=list(ds.feature_shape),
        classes=list(ds.classes),
        class_counts=ds.class_counts,
        storage_key=storage_key_for(tenant_id, dataset_id),
        stored_bytes=stored_bytes,
        status=DatasetStatus.ready.value,
        preprocessing=ds.preprocessing,
        dtype=ds.dtype,
        options_hash=options_hash,
        created_at=now(),
    )


def _store_row(session: Session, storage: Storage, row: Dataset, workdir: Path) -> tuple[Dataset, bool]:
    """Move the files into storage (meta.json last) and commit the row; on any failure remove them again.
    The same upload stored concurrently wins instead."""
    prefix, tenant_id, sha256, options_hash = (
        _prefix_of(row.storage_key),
        row.tenant_id,
        row.sha256,
        row.options_hash,
    )
    try:
        for name in STORED_FILES:
            storage.adopt_file(prefix + name, workdir / name)
        session.add(row)
        session.commit()
    except IntegrityError:  # the same upload stored concurrently: keep the other one
        session.rollback()
        storage.delete_prefix(prefix)
        existing = _find(session, tenant_id, sha256, options_hash)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        session.rollback()
        storage.delete_prefix(prefix)
        raise
    return row, True


# ---------------------------------------------------------------------------------------------- reading


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
    return DatasetInfo(
        BUILTIN_PREFIX + name, list(ds.classes), list(ds.feature_shape), ds.num_samples, ds.dtype
    )


def dataset_info(session: Session, tenant_id: str, ref: str) -> DatasetInfo:
    """Classes and feature shape of `ref` (built-in or the tenant's upload) without reading its data."""
    if ref.startswith(BUILTIN_PREFIX):
        return builtin_info(_builtin_name(ref))
    row = get_dataset_row(session, tenant_id, ref)
    return DatasetInfo(
        ref, list(row.classes), list(row.feature_shape), row.num_samples, row.dtype, row.preprocessing
    )


def open_dataset(
    session: Session, storage: Storage, tenant_id: str, dataset_ref: str, *, cache: LocalCache | None = None
) -> ArrayDataset:
    """Load the dataset a job refers to: `builtin:<name>` or the id of the tenant's uploaded dataset.
    `cache` (default: the settings' `dataset_cache_dir` / `dataset_cache_bytes`) holds remote copies.
    A dataset that is not `ready` (still importing, or its import failed) is DatasetError('dataset')."""
    if dataset_ref.startswith(BUILTIN_PREFIX):
        return load_builtin(_builtin_name(dataset_ref))
    row = get_dataset_row(session, tenant_id, dataset_ref)
    if row.status == DatasetStatus.failed.value:
        reason = (row.error or {}).get("message") or "no reason recorded"
        raise DatasetError("dataset", f"the import of dataset {row.id} failed: {reason}")
    if row.status != DatasetStatus.ready.value:
        raise DatasetError("dataset", f"dataset {row.id} is still {row.status}, not ready to train on")
    try:
        if row.storage_key.endswith(".npz"):
            return _open_legacy_npz(storage, row)
        return open_stored(_local_directory(storage, row, cache))
    except FileNotFoundError as e:
        raise DatasetError("dataset", f"the stored data of dataset {dataset_ref!r} is missing") from e


def _local_directory(storage: Storage, row: Dataset, cache: LocalCache | None) -> Path:
    """A local directory with the dataset's files: storage's own on local disk, else a cache entry."""
    prefix = _prefix_of(row.storage_key)
    local = storage.local_path(prefix + "x.npy")
    if local is not None:
        return local.parent
    if cache is None:
        settings = get_settings()
        cache = LocalCache(Path(settings.dataset_cache_dir), settings.dataset_cache_bytes)
    files = {name: (lambda path, key=prefix + name: storage.download(key, path)) for name in STORED_FILES}
    try:
        return cache.get(f"{row.id}-{row.sha256}", files, row.stored_bytes)
    except CacheTooSmall as e:
        raise DatasetError("dataset", f"{e}: raise SIMTRAIN_DATASET_CACHE_BYTES") from e


def _open_legacy_npz(storage: Storage, row: Dataset) -> ArrayDataset:
    """A dataset stored as one `.npz` by an earlier version (float32, read into memory)."""
    fd, tmp = tempfile.mkstemp(prefix="dataset-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as out, storage.open(row.storage_key) as src:
            shutil.copyfileobj(src, out, CHUNK)
        return load_npz(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def delete_dataset_objects(storage: Storage, row: Dataset) -> None:
    """Remove the stored data of a dataset row (the row itself is the caller's)."""
    if row.storage_key.endswith(".npz"):
        storage.delete(row.storage_key)
    else:
        storage.delete_prefix(_prefix_of(row.storage_key))
