"""Datasets given by URI (https, http, s3; `file` when the operator allows it): registered at once, imported
by the worker's `simtrain.import_dataset` task.

`register_reference` checks the URI against the allow-list (`core.fetch.UrlPolicy`: SpecError naming the
field when refused), stores a `datasets` row with status `importing` and `source_uri`, and sends the
task after the commit. The same tenant, URI, sha256, format and options again is the same row (the
`options_hash` of a reference hashes all of them); a reference whose import `failed` is imported again.

`import_dataset` (the task's body) claims the row (`core.dataset_import_claims`: two deliveries never both
import), downloads it with `core.fetch.fetch_to_file` (the settings' size and time bounds, the sha256
checked), parses and stores it exactly like an upload (`core.data.parse_upload`, the stored form, the
tenant's quota) and marks the row `ready` (counts, classes, shape) or `failed` with `error`
{code, message, field}, emitting `dataset.ready` / `dataset.failed` in the same transaction. Its scratch
files are always removed. While a row is not ready its `preprocessing` holds the import's options
(`{"kind": "import", "label_column", "image_size", "resize"}`); the real record replaces it when ready.

A job may name a URI as its `dataset` (`job_dataset`: registered as above; the job refers to its id).
A queued job whose dataset is importing waits (`import_wait`: the train task sends itself again, for at
most `SIMTRAIN_IMPORT_WAIT_S` after the job was created), then runs; `open_dataset` fails it as invalid,
naming `dataset`, when the import failed or has not finished.

    row, queued = register_reference(session, settings, tenant_id, DatasetReference("s3://b/k.parquet"))
    outcome = import_dataset(session_factory, storage, settings, row.id)     # in the worker
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from core.data import OutputTooLarge, parse_upload, write_stored
from core.data.stored import STORED_FILES
from core.dataset_import_claims import Lease, claim, claimed_by, sent_token
from core.dataset_store import (
    BUILTIN_PREFIX,
    DatasetInfo,
    UploadOptions,
    _check_quota,
    _limits,
    _prefix_of,
    _quota_exceeded,
    _quota_left,
    dataset_info,
    get_dataset_row,
    scratch_dir,
    storage_key_for,
)
from core.db.models import Dataset, DatasetStatus, Job
from core.db.types import new_id
from core.db.types import now as utcnow
from core.errors import DatasetError, InvalidInput, SimtrainError, SpecError
from core.fetch import UrlPolicy, fetch_to_file
from core.jobspec import JobCreate, check_test_dataset, validate_job
from core.settings import Settings
from core.status import JobStatus
from core.storage import Storage
from core.webhooks.outbox import emit

__all__ = [
    "IMPORT_FORMATS",
    "DatasetReference",
    "import_dataset",
    "import_error",
    "import_wait",
    "is_uri",
    "job_dataset",
    "reference_format",
    "register_reference",
    "validate_pending_job",
    "waiting_jobs",
]

log = logging.getLogger("simtrain.datasets.import")

IMPORT_FORMATS = ("npz", "csv", "parquet", "zip")
MAX_URI_LENGTH = 2000  # the `source_uri` column
IMPORT_POLL_S = 5.0  # a waiting job looks again at least this often
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class DatasetReference:
    """A dataset to import: its URI, the expected sha256 (optional), the format (default: the URI's
    extension) and the options an upload has (name, label column, image size, resize)."""

    uri: str
    sha256: str | None = None
    format: str | None = None
    options: UploadOptions = field(default_factory=UploadOptions)


def is_uri(dataset: str) -> bool:
    """Whether a job's `dataset` is a URI (`scheme://...`) rather than an id or `builtin:<name>`."""
    return bool(_URI.match(dataset))


def reference_format(ref: DatasetReference, field: str = "format") -> str:
    """The format to parse the download as: `ref.format`, else the URI path's extension."""
    if ref.format is not None:
        if ref.format not in IMPORT_FORMATS:
            raise DatasetError(field, f"choose one of {', '.join(IMPORT_FORMATS)}, got {ref.format[:20]!r}")
        return ref.format
    suffix = PurePosixPath(unquote(urlsplit(ref.uri).path)).suffix.lower().removeprefix(".")
    if suffix not in IMPORT_FORMATS:
        formats = ", ".join(IMPORT_FORMATS)
        how = "give `format`" if field == "format" else "register it (POST /v1/datasets) with a `format`"
        raise DatasetError(field, f"the URI's extension does not say the format ({formats}); {how}")
    return suffix


# ------------------------------------------------------------------------------------------- registering


def _options_record(options: UploadOptions) -> dict[str, Any]:
    size = list(options.image_size) if options.image_size else None
    return {
        "kind": "import",
        "label_column": options.label_column,
        "image_size": size,
        "resize": options.resize,
    }


def _options_of(row: Dataset) -> UploadOptions:
    record = row.preprocessing if isinstance(row.preprocessing, dict) else {}
    size = record.get("image_size")
    return UploadOptions(
        name=row.name,
        label_column=record.get("label_column"),
        image_size=(int(size[0]), int(size[1])) if size else None,
        resize=record.get("resize"),
    )


def _reference_hash(ref: DatasetReference, fmt: str, sha256: str | None) -> str:
    key = {"source_uri": ref.uri, "sha256": sha256, "format": fmt, "options": ref.options.options_hash()}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _check_reference(settings: Settings, ref: DatasetReference, field: str) -> tuple[str, str | None]:
    """(format, sha256) of a reference the policy lets through; SpecError / DatasetError otherwise."""
    if len(ref.uri) > MAX_URI_LENGTH:
        raise SpecError(field, f"URI longer than {MAX_URI_LENGTH} characters")
    UrlPolicy.from_settings(settings).check_url(ref.uri, field)
    sha256 = ref.sha256.strip().lower() if ref.sha256 is not None else None
    if sha256 is not None and not _SHA256.match(sha256):
        raise SpecError("sha256", "must be 64 hexadecimal digits")
    return reference_format(ref, "format" if field == "uri" else field), sha256


def _display_name(ref: DatasetReference, fmt: str) -> str:
    name = ref.options.name or PurePosixPath(unquote(urlsplit(ref.uri).path)).name or f"dataset.{fmt}"
    return name[:200]


def _find_reference(session: Session, tenant_id: str, key: str) -> Dataset | None:
    return session.execute(
        select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.options_hash == key).limit(1)
    ).scalar_one_or_none()


def register_reference(
    session: Session, settings: Settings, tenant_id: str, ref: DatasetReference, *, field: str = "uri"
) -> tuple[Dataset, bool]:
    """The tenant's dataset for `ref` and whether its import was queued now (False: the existing row,
    importing or ready). `field` names the URI in errors. Commits, then sends the import task."""
    fmt, sha256 = _check_reference(settings, ref, field)
    key = _reference_hash(ref, fmt, sha256)
    row = _find_reference(session, tenant_id, key)
    if row is not None:
        return row, _retry_failed(session, settings, row)
    dataset_id = new_id()
    row = Dataset(
        id=dataset_id, tenant_id=tenant_id, name=_display_name(ref, fmt), format=fmt, sha256=sha256 or "",
        size_bytes=0, num_samples=0, feature_shape=[], classes=[], class_counts=[], stored_bytes=0,
        storage_key=sent_token(), status=DatasetStatus.importing.value, source_uri=ref.uri,
        preprocessing=_options_record(ref.options), options_hash=key, created_at=utcnow(),
    )  # fmt: skip
    try:
        session.add(row)
        session.commit()
    except IntegrityError:  # the same reference registered at the same moment: the other one stands
        session.rollback()
        row = _find_reference(session, tenant_id, key)
        if row is None:
            raise
        return row, False
    _send(settings, dataset_id)
    return row, True


def _retry_failed(session: Session, settings: Settings, row: Dataset) -> bool:
    """Import a failed reference again (its error cleared); False for any other row."""
    if row.status != DatasetStatus.failed.value:
        return False
    done = session.execute(
        update(Dataset)
        .where(Dataset.id == row.id, Dataset.status == DatasetStatus.failed.value)
        .values(status=DatasetStatus.importing.value, error=None, storage_key=sent_token())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(row)
    if done.rowcount != 1:
        return False
    _send(settings, row.id)
    return True


def _send(settings: Settings, dataset_id: str) -> None:
    from core.queue import send_import

    try:
        send_import(dataset_id, settings)
    except Exception as exc:  # noqa: BLE001 - the broker is down: the worker's reconciler sends it later
        log.warning("dataset %s: import task not sent (%s); the reconciler sends it", dataset_id, exc)


# ------------------------------------------------------------------------------------------------- jobs


def job_dataset(
    session: Session, settings: Settings, tenant_id: str, dataset: str
) -> tuple[str, DatasetInfo | None]:
    """What a job's `dataset` names: (the ref the job stores, its DatasetInfo; None while it imports).
    A URI is registered (or reused) and the job refers to its dataset's id. A dataset whose import failed
    is DatasetError('dataset')."""
    ref = dataset
    if is_uri(dataset):
        row, _ = register_reference(session, settings, tenant_id, DatasetReference(dataset), field="dataset")
        ref = row.id
    if not ref.startswith(BUILTIN_PREFIX):
        row = get_dataset_row(session, tenant_id, ref)
        if row.status == DatasetStatus.importing.value:
            return ref, None
        if row.status == DatasetStatus.failed.value:
            reason = (row.error or {}).get("message", "unknown reason")
            raise DatasetError("dataset", f"the import of dataset {ref} failed: {reason}")
    return ref, dataset_info(session, tenant_id, ref)


def validate_pending_job(job: JobCreate, *, max_epochs: int) -> dict[str, Any]:
    """The spec of a job whose dataset is still importing: what does not depend on the dataset is checked
    now; its classes, similarity and loss against the dataset's classes when the job trains."""
    if job.classes is not None:
        return validate_job(job, list(job.classes), max_epochs=max_epochs)
    if job.training.epochs > max_epochs:
        raise SpecError("training.epochs", f"must be at most {max_epochs}, got {job.training.epochs}")
    check_test_dataset(job, [])
    spec = job.model_dump(mode="json")
    spec["classes"] = None  # all of the dataset's, once it is known
    if spec["training"].get("seed") is None:
        spec["training"]["seed"] = secrets.randbelow(2**31 - 1)
    return spec


def import_wait(
    session: Session, settings: Settings, job_id: str, now: datetime | None = None
) -> float | None:
    """Seconds a queued job should wait before it is tried again, because its dataset is importing and the
    job is younger than `settings.import_wait_s`; None: run it now. Ends the read transaction."""
    t = now or utcnow()
    job = session.get(Job, job_id, populate_existing=True)
    status = None
    if (
        job is not None
        and job.status == JobStatus.queued.value
        and not job.dataset_ref.startswith(BUILTIN_PREFIX)
    ):
        status = session.execute(
            select(Dataset.status).where(Dataset.id == job.dataset_ref, Dataset.tenant_id == job.tenant_id)
        ).scalar_one_or_none()
    left = settings.import_wait_s - (t - job.created_at).total_seconds() if job is not None else 0.0
    session.commit()
    if status != DatasetStatus.importing.value or left <= 0:
        return None
    return max(0.1, min(IMPORT_POLL_S, settings.requeue_after_seconds / 2, left))


def waiting_jobs(session: Session, dataset_id: str) -> list[str]:
    """The queued jobs on `dataset_id` (to send again once its import has ended). Ends the transaction."""
    ids = session.execute(
        select(Job.id).where(Job.dataset_ref == dataset_id, Job.status == JobStatus.queued.value)
    ).scalars()
    ids = list(ids)
    session.commit()
    return ids


# ---------------------------------------------------------------------------------------------- importing


def import_dataset(
    session_factory: Callable[[], Session], storage: Storage, settings: Settings, dataset_id: str
) -> str:
    """Import one registered reference (see the module docstring): "ready", "failed", "not_claimed" (not
    importing, or another delivery holds it) or "lost" (the claim expired meanwhile; nothing changed)."""
    with session_factory() as session:
        owner = claim(session, dataset_id, lease_seconds=settings.lease_seconds)
        if owner is None:
            return "not_claimed"
        row = session.get(Dataset, dataset_id, populate_existing=True)
        session.commit()  # no transaction stays open while the data downloads
        if row is None:  # removed with its tenant meanwhile
            return "not_claimed"
        log.info("dataset %s: importing %s", dataset_id, row.source_uri)
        with Lease(session_factory, dataset_id, owner, lease_seconds=settings.lease_seconds):
            try:
                return _fetch_and_store(session, storage, settings, row, owner)
            except IntegrityError as exc:  # the same data registered twice at once: this one fails
                return _mark_failed(session, storage, dataset_id, owner, exc)
            except SQLAlchemyError:
                raise  # the database is away: the claim lapses and the reconciler sends the import again
            except Exception as exc:  # noqa: BLE001 - every other failure is the dataset's `error`
                return _mark_failed(session, storage, dataset_id, owner, exc)


def _fetch_and_store(session: Session, storage: Storage, settings: Settings, row: Dataset, owner: str) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="import-", dir=scratch_dir(settings)))
    try:
        download = workdir / f"source.{row.format}"
        fetched = fetch_to_file(
            row.source_uri, download, policy=UrlPolicy.from_settings(settings),
            max_bytes=settings.fetch_max_bytes, timeout_s=settings.fetch_timeout_s, sha256=row.sha256 or None,
        )  # fmt: skip
        values = _parse_into(session, settings, row, download, workdir / "stored")
        prefix = _prefix_of(storage_key_for(row.tenant_id, row.id))
        for name in STORED_FILES:
            storage.adopt_file(prefix + name, workdir / "stored" / name)
        values |= {"sha256": fetched.sha256, "size_bytes": fetched.size}
        return _mark_ready(session, row, owner, values)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _parse_into(session: Session, settings: Settings, row: Dataset, download: Path, out: Path) -> dict:
    """Parse the download into the stored files in `out` (as an upload is); the row's new values."""
    options = _options_of(row)
    out.mkdir()
    try:
        limits = _limits(settings, options, _quota_left(session, settings, row.tenant_id))
        session.commit()
        ds = parse_upload(download, download.name, limits=limits, workdir=out)
        stored_bytes = sum(p.stat().st_size for p in write_stored(ds, out).values())
    except OutputTooLarge as e:
        raise _quota_exceeded(session, settings, row.tenant_id, e.nbytes) from None
    _check_quota(session, settings, row.tenant_id, stored_bytes)
    session.commit()
    return {
        "num_samples": ds.num_samples, "feature_shape": list(ds.feature_shape), "classes": list(ds.classes),
        "class_counts": ds.class_counts, "stored_bytes": stored_bytes, "preprocessing": ds.preprocessing,
        "dtype": ds.dtype,
    }  # fmt: skip


def _payload(session: Session, dataset_id: str) -> tuple[str, dict[str, Any]]:
    row = session.execute(
        select(Dataset).where(Dataset.id == dataset_id).execution_options(populate_existing=True)
    ).scalar_one()
    return row.tenant_id, {
        "id": row.id, "name": row.name, "status": row.status, "format": row.format,
        "source_uri": row.source_uri, "sha256": row.sha256, "num_samples": row.num_samples,
        "classes": list(row.classes), "feature_shape": list(row.feature_shape), "error": row.error,
    }  # fmt: skip


def _mark_ready(session: Session, row: Dataset, owner: str, values: dict[str, Any]) -> str:
    key = storage_key_for(row.tenant_id, row.id)
    done = session.execute(
        update(Dataset)
        .where(Dataset.id == row.id, claimed_by(owner))
        .values(status=DatasetStatus.ready.value, storage_key=key, error=None, **values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # the claim expired and another delivery owns the import now: leave it
        session.rollback()
        log.warning("dataset %s: claim lost before the import ended; left to its new owner", row.id)
        return "lost"
    tenant_id, payload = _payload(session, row.id)
    emit(session, tenant_id, "dataset.ready", payload)
    session.commit()
    log.info("dataset %s: ready (%d samples)", row.id, values["num_samples"])
    return DatasetStatus.ready.value


def import_error(exc: BaseException) -> dict[str, Any]:
    """The `error` {code, message, field} a failed import stores (a problem with the file is `uri`'s)."""
    if isinstance(exc, InvalidInput):
        name = "uri" if exc.field == "file" else exc.field
        return {"code": exc.code, "message": exc.reason[:1000], "field": name}
    if isinstance(exc, SimtrainError):
        return {"code": exc.code, "message": exc.message[:1000], "field": None}
    return {"code": "internal_error", "message": f"the import failed ({type(exc).__name__})", "field": None}


def _mark_failed(session: Session, storage: Storage, dataset_id: str, owner: str, exc: Exception) -> str:
    session.rollback()
    error = import_error(exc)
    if error["code"] == "internal_error":
        log.exception("dataset %s: import failed unexpectedly", dataset_id)
    row = session.get(Dataset, dataset_id, populate_existing=True)
    if row is None:
        return "lost"
    key = storage_key_for(row.tenant_id, dataset_id)
    done = session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id, claimed_by(owner))
        .values(status=DatasetStatus.failed.value, storage_key=key, error=error)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:
        session.rollback()
        return "lost"
    tenant_id, payload = _payload(session, dataset_id)
    emit(session, tenant_id, "dataset.failed", payload)
    session.commit()
    storage.delete_prefix(_prefix_of(key))  # what an attempt killed while storing may have left
    log.info("dataset %s: import failed: %s", dataset_id, error["message"])
    return DatasetStatus.failed.value
