"""Uploaded warm-start weights (safetensors only) and the resolution of a job's `model.init`.

    upload = receive_stream(fileobj, path, "w.safetensors", settings.max_weights_bytes)  # core.data.receive
    row = store_weights(session, storage, settings, tenant_id, upload, name="resnet", classes=["a", "b"])
    row = get_weights_row(session, tenant_id, weights_id)         # NotFound, also for another tenant's id
    delete_weights(session, storage, tenant_id, weights_id)       # Conflict while an active job uses it
    check_init_source(session, tenant_id, spec.model.init, storage)  # at submission: SpecError(model.init.*)
    init = resolve_init(session, storage, tenant_id, {"from_job": JOB_ID})   # in the worker: InitWeights
    init = resolve_init(session, storage, tenant_id, {"from_job": JOB_ID, "checkpoint": 7})  # one checkpoint

An upload is never unpickled: a pickle (`torch.save`'s legacy format) or a zip (`torch.save`'s default,
`.pt` / `.pth`) is recognised by its first bytes and refused before anything else reads the file. The
received file (on local disk, with its SHA-256 and size, bounded by `SIMTRAIN_MAX_WEIGHTS_BYTES`) then
has its header parsed by the `safetensors` library (bounded, the data fully covered, allowed dtypes
only) and is stored at `weights/{tenant_id}/{weights_id}.safetensors`. Its bytes count in the tenant's
stored-bytes quota with the datasets' and the jobs' files (`core.storage_quota`, the one sum every quota
check counts). Every refusal names the form field (`file`, `classes`).

`resolve_init` loads the tensors a warm start begins from: `{"from_job": ID}` (a succeeded job of the
same tenant: its `model.safetensors`, classes from its `model.json`), `{"from_job": ID, "checkpoint":
EPOCH}` (the model state of one of that job's kept checkpoints, `core.checkpoint`; source
`job:ID/checkpoints/EPOCH`) or `{"weights": ID}` (an upload, with the classes given then, if any).
Anything unusable is `SpecError("model.init.from_job" | "model.init.checkpoint" | "model.init.weights")`,
so the job fails as invalid.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db.jobs import ACTIVE
from core.db.models import Job, JobArtifact, Weights
from core.db.types import new_id, now
from core.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge, SpecError
from core.settings import Settings
from core.status import JobStatus
from core.storage import Storage
from core.storage_quota import StorageQuotaExceeded, check_room

if TYPE_CHECKING:  # torch: imported when weights are resolved, not by importing this module
    from core.data.receive import UploadedFile
    from core.models.init import InitWeights
    from core.models.spec import InitSpec

__all__ = [
    "ALLOWED_DTYPES",
    "MAX_HEADER_BYTES",
    "SafetensorsInfo",
    "WeightsFileError",
    "WeightsQuotaExceeded",
    "check_init_source",
    "delete_weights",
    "get_weights_row",
    "inspect_safetensors",
    "parse_classes",
    "refuse_pickle",
    "resolve_init",
    "store_weights",
    "weights_key",
]

CHUNK = 1 << 20
MAX_HEADER_BYTES = 16 * CHUNK  # the JSON header of a safetensors file (names, dtypes, shapes, offsets)
ALLOWED_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"})
MAX_CLASS_NAME = 100
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_NOT_PICKLE = (
    "is never unpickled: save the state dict as safetensors instead "
    "(safetensors.torch.save_file(model.state_dict(), 'model.safetensors'))"
)


class WeightsFileError(InvalidInput):
    """An uploaded weights file (or its form fields) that cannot be used; names the field."""

    code = "invalid_weights"


class WeightsQuotaExceeded(StorageQuotaExceeded):
    """The tenant's stored objects would pass its quota with these weights: 429 with Retry-After (a
    `core.storage_quota.StorageQuotaExceeded`, the same code and body)."""


@dataclass(frozen=True)
class SafetensorsInfo:
    """What a valid safetensors file holds, from its header alone."""

    num_tensors: int
    num_parameters: int
    dtypes: list[str]


# ----------------------------------------------------------------------------------------------- uploads


def weights_key(tenant_id: str, weights_id: str) -> str:
    return f"weights/{tenant_id}/{weights_id}.safetensors"


def parse_classes(text: str | None) -> list[str] | None:
    """The `classes` form field: a JSON list of distinct class names (None when not given)."""
    if text is None or not text.strip():
        return None
    from core.similarity import MAX_CLASSES

    try:
        classes = json.loads(text)
    except json.JSONDecodeError as e:
        raise WeightsFileError("classes", f"must be a JSON list of class names: {e.msg}") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise WeightsFileError("classes", "must be a JSON list of class names (strings)")
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise WeightsFileError("classes", f"must name 2 to {MAX_CLASSES} classes, got {len(classes)}")
    if any(not 1 <= len(c) <= MAX_CLASS_NAME for c in classes):
        raise WeightsFileError("classes", f"each class name must have 1 to {MAX_CLASS_NAME} characters")
    if len(set(classes)) != len(classes):
        raise WeightsFileError("classes", "contains duplicates")
    return classes


def refuse_pickle(first_bytes: bytes) -> None:
    """WeightsFileError("file") when the file starts like a pickle or a zip (torch.save, .pt / .pth)."""
    if first_bytes.startswith(_ZIP_MAGIC):
        raise WeightsFileError("file", f"a zip archive (torch.save's .pt / .pth format) {_NOT_PICKLE}")
    if len(first_bytes) >= 2 and first_bytes[0] == 0x80 and 2 <= first_bytes[1] <= 5:
        raise WeightsFileError("file", f"a pickle (torch.save / pickle.dump output) {_NOT_PICKLE}")


def inspect_safetensors(path: str | os.PathLike) -> SafetensorsInfo:
    """Parse the header of the safetensors file at `path` with the `safetensors` library (no tensor is
    loaded); WeightsFileError("file") when it is not one, or holds no tensors or another dtype."""
    from safetensors import SafetensorError, safe_open

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8).ljust(8, b"\0"))[0]
        opening = f.read(1)
    if size < 8 or header_len > min(MAX_HEADER_BYTES, size - 8) or opening != b"{":
        raise WeightsFileError("file", _not_safetensors(size, header_len))
    try:
        with safe_open(str(path), framework="pt") as st:
            shapes = {k: (st.get_slice(k).get_dtype(), st.get_slice(k).get_shape()) for k in st.keys()}  # noqa: SIM118
    except (SafetensorError, ValueError, OSError) as e:
        raise WeightsFileError("file", f"not a valid safetensors file: {e}") from None
    if not shapes:
        raise WeightsFileError("file", "the safetensors file holds no tensors")
    dtypes = sorted({dtype for dtype, _ in shapes.values()})
    refused = [d for d in dtypes if d not in ALLOWED_DTYPES]
    if refused:
        raise WeightsFileError(
            "file", f"tensors of dtype {', '.join(refused)}; allowed: {', '.join(sorted(ALLOWED_DTYPES))}"
        )
    parameters = sum(math.prod(shape) for _, shape in shapes.values())
    return SafetensorsInfo(num_tensors=len(shapes), num_parameters=int(parameters), dtypes=dtypes)


def _not_safetensors(size: int, header_len: int) -> str:
    if size < 8:
        return "not a safetensors file: shorter than its 8-byte header length"
    if header_len > MAX_HEADER_BYTES:
        return f"not a safetensors file: a header of {header_len} bytes (at most {MAX_HEADER_BYTES})"
    if header_len > size - 8:
        return f"not a safetensors file: its header length ({header_len} bytes) runs past the end of the file"
    return "not a safetensors file: its header is not the JSON object the format begins with"


def store_weights(
    session: Session,
    storage: Storage,
    settings: Settings,
    tenant_id: str,
    upload: UploadedFile,
    *,
    name: str,
    classes: Sequence[str] | None = None,
) -> Weights:
    """Validate the received file `upload` (see the module docstring), store it for `tenant_id` and
    commit its row."""
    with open(upload.path, "rb") as f:
        refuse_pickle(f.read(8))  # before anything else reads the file
    if upload.size == 0:
        raise WeightsFileError("file", "the file is empty")
    if upload.size > settings.max_weights_bytes:
        raise PayloadTooLarge(
            f"the weights file is larger than the limit of {settings.max_weights_bytes} bytes "
            "(SIMTRAIN_MAX_WEIGHTS_BYTES)",
            details={"limit": settings.max_weights_bytes},
        )
    info = inspect_safetensors(upload.path)
    _check_quota(session, settings, tenant_id, upload.size)
    weights_id = new_id()
    row = Weights(
        id=weights_id, tenant_id=tenant_id, name=name[:200], sha256=upload.sha256, size_bytes=upload.size,
        num_tensors=info.num_tensors, num_parameters=info.num_parameters, dtypes=info.dtypes,
        classes=list(classes) if classes is not None else None,
        storage_key=weights_key(tenant_id, weights_id), created_at=now(),
    )  # fmt: skip
    storage.put_file(row.storage_key, upload.path)
    session.add(row)
    try:
        session.commit()
    except BaseException:
        session.rollback()
        storage.delete(row.storage_key)
        raise
    return row


def _check_quota(session: Session, settings: Settings, tenant_id: str, new_bytes: int) -> None:
    """WeightsQuotaExceeded when `new_bytes` more would pass the tenant's quota (`core.storage_quota`)."""
    check_room(session, settings, tenant_id, new_bytes, what="these weights", error=WeightsQuotaExceeded)


def get_weights_row(session: Session, tenant_id: str, weights_id: str) -> Weights:
    """The tenant's uploaded weights, or NotFound (the same for another tenant's id)."""
    row = session.execute(
        select(Weights).where(Weights.id == weights_id[:64], Weights.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(
            f"weights {weights_id[:64]!r} not found", details=[{"loc": ["weights"], "msg": "not found"}]
        )
    return row


def delete_weights(session: Session, storage: Storage, tenant_id: str, weights_id: str) -> None:
    """Delete the tenant's weights (row, then stored file); Conflict while a queued / running job uses them."""
    row = get_weights_row(session, tenant_id, weights_id)
    active = session.execute(
        select(Job.id, Job.spec).where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE))
    ).all()
    users = [job_id for job_id, spec in active if _init_of(spec).get("weights") == row.id]
    if users:
        raise Conflict(
            f"weights {row.id} are used by {len(users)} queued or running job(s); cancel them first",
            details={"jobs": users[:5]},
        )
    session.execute(delete(Weights).where(Weights.id == row.id, Weights.tenant_id == tenant_id))
    session.commit()
    storage.delete(row.storage_key)


def _init_of(spec: Any) -> Mapping[str, Any]:
    model = spec.get("model") if isinstance(spec, Mapping) else None
    init = model.get("init") if isinstance(model, Mapping) else None
    return init if isinstance(init, Mapping) else {}


# ---------------------------------------------------------------------------------- warm-start sources


def _init_spec(init_spec: InitSpec | Mapping[str, Any]) -> InitSpec:
    from pydantic import ValidationError

    from core.models.spec import InitSpec, validation_to_spec_error

    if isinstance(init_spec, InitSpec):
        return init_spec

    try:
        return InitSpec.model_validate(dict(init_spec))
    except ValidationError as e:
        raise validation_to_spec_error("model.init", e) from None


def _source_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """The tenant's succeeded job `job_id`; SpecError("model.init.from_job") otherwise."""
    job = session.execute(
        select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if job is None:
        raise SpecError("model.init.from_job", f"no job {job_id!r} of this tenant")
    if job.status != JobStatus.succeeded.value:
        raise SpecError(
            "model.init.from_job", f"job {job_id} is {job.status}; a warm start needs a succeeded job"
        )
    return job


def check_init_source(
    session: Session, tenant_id: str, init_spec: InitSpec | Mapping | None, storage: Storage | None = None
) -> None:
    """At submission: the warm-start source names the tenant's succeeded job or uploaded weights
    (SpecError naming `model.init.from_job` / `model.init.weights`) and, with `checkpoint`, an epoch that
    job keeps a checkpoint of in `storage` (else `model.init.checkpoint`); nothing is loaded."""
    if init_spec is None:
        return
    spec = _init_spec(init_spec)
    if spec.from_job is not None:
        job = _source_job(session, tenant_id, spec.from_job)
        if spec.checkpoint is not None:
            if storage is None:
                raise ValueError("checking model.init.checkpoint needs the storage")
            _check_kept(storage, job.id, spec.checkpoint)
        return
    found = session.execute(
        select(Weights.id).where(Weights.id == spec.weights, Weights.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if found is None:
        raise SpecError("model.init.weights", f"no uploaded weights {spec.weights!r} of this tenant")


def resolve_init(
    session: Session, storage: Storage, tenant_id: str, init_spec: InitSpec | Mapping[str, Any]
) -> InitWeights:
    """The tensors and classes `model.init` names (see the module docstring)."""
    from core.models.init import InitWeights

    spec = _init_spec(init_spec)
    if spec.from_job is not None and spec.checkpoint is not None:
        return _from_checkpoint(session, storage, tenant_id, spec.from_job, spec.checkpoint)
    if spec.from_job is not None:
        return _from_job(session, storage, tenant_id, spec.from_job)
    field = "model.init.weights"
    row = session.execute(
        select(Weights).where(Weights.id == spec.weights, Weights.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise SpecError(field, f"no uploaded weights {spec.weights!r} of this tenant")
    tensors = _load_tensors(storage, row.storage_key, field)
    classes = list(row.classes) if row.classes is not None else None
    return InitWeights(tensors=tensors, classes=classes, source=f"weights:{row.id}")


def _check_kept(storage: Storage, job_id: str, epoch: int) -> None:
    """SpecError("model.init.checkpoint") unless the job keeps a checkpoint of `epoch`."""
    from core.checkpoint import job_checkpoints

    kept = job_checkpoints(storage, job_id).epochs()
    if epoch not in kept:
        listed = ", ".join(map(str, kept)) or "none"
        raise SpecError(
            "model.init.checkpoint", f"job {job_id} keeps no checkpoint of epoch {epoch} (kept: {listed})"
        )


def _from_checkpoint(
    session: Session, storage: Storage, tenant_id: str, job_id: str, epoch: int
) -> InitWeights:
    """The model weights of one kept checkpoint of the tenant's succeeded job; its classes from the
    checkpoint's model.json. Unusable: SpecError("model.init.checkpoint")."""
    from core.checkpoint import CorruptCheckpoint, job_checkpoints
    from core.models.init import InitWeights

    field = "model.init.checkpoint"
    job = _source_job(session, tenant_id, job_id)
    try:
        meta, state = job_checkpoints(storage, job.id).load(epoch)
    except FileNotFoundError:
        raise SpecError(field, f"job {job.id} keeps no checkpoint of epoch {epoch}") from None
    except CorruptCheckpoint as e:
        raise SpecError(field, f"the checkpoint of epoch {epoch} of job {job.id} is unusable: {e}") from None
    tensors = state.get("model")
    if not isinstance(tensors, dict) or not tensors:
        raise SpecError(field, f"the checkpoint of epoch {epoch} of job {job.id} holds no model weights")
    classes = (meta.get("model_json") or {}).get("classes")
    return InitWeights(
        tensors=dict(tensors),
        classes=[str(c) for c in classes] if classes else None,
        source=f"job:{job.id}/checkpoints/{epoch}",
    )


def _from_job(session: Session, storage: Storage, tenant_id: str, job_id: str) -> InitWeights:
    from core.models.init import InitWeights

    field = "model.init.from_job"
    job = _source_job(session, tenant_id, job_id)
    keys = dict(
        session.execute(
            select(JobArtifact.name, JobArtifact.storage_key).where(
                JobArtifact.job_id == job.id, JobArtifact.name.in_(("model.safetensors", "model.json"))
            )
        ).all()
    )
    if len(keys) != 2:
        raise SpecError(field, f"job {job.id} has no stored model (model.safetensors and model.json)")
    try:
        model_json = json.loads(storage.get_bytes(keys["model.json"]))
    except FileNotFoundError:
        raise SpecError(field, f"the stored model.json of job {job.id} is missing") from None
    except ValueError as e:
        raise SpecError(field, f"the stored model.json of job {job.id} cannot be read: {e}") from None
    classes = model_json.get("classes") if isinstance(model_json, dict) else None
    tensors = _load_tensors(storage, keys["model.safetensors"], field)
    return InitWeights(
        tensors=tensors, classes=[str(c) for c in classes] if classes else None, source=f"job:{job.id}"
    )


def _load_tensors(storage: Storage, key: str, field: str) -> dict[str, Any]:
    """The tensors of the safetensors object at `key` (copied to a temporary file, then loaded on CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    fd, tmp = tempfile.mkstemp(prefix="init-", suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                src = storage.open(key)
            except FileNotFoundError:
                raise SpecError(field, "the stored weights are missing") from None
            with src:
                shutil.copyfileobj(src, out, CHUNK)
        try:
            return load_file(tmp, device="cpu")
        except (SafetensorError, ValueError, OSError) as e:
            raise SpecError(field, f"the stored weights cannot be read: {e}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
