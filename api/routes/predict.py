"""Predictions from a succeeded job's trained model (loaded from its artifacts, cached per job).

The body is JSON `{"inputs": [rows]}` (feature rows, or raw pixel values in the dataset's shape),
JSON `{"images": [base64 files]}`, or multipart/form-data with image files in the field `files`. Image
files are turned into arrays exactly as the training images were (`core.data.prepare_image` with the
model's `preprocessing`, from model.json), so a PNG predicts what its stored pixels would. Bounded:
`SIMTRAIN_MAX_PREDICT_ROWS` rows, `SIMTRAIN_MAX_PREDICT_IMAGES` images, `SIMTRAIN_MAX_IMAGE_PIXELS` per
image and `SIMTRAIN_MAX_PREDICT_BYTES` for the whole body.
"""

from __future__ import annotations

import base64
import binascii
import math
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import UploadFile

from api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from api.routes import API_PREFIX
from api.schemas import PredictPublic, PredictRequest, predict_request_body
from api.session_route import SessionReleasingRoute
from core.data import image_spec, prepare_image
from core.db import jobs as jobstate
from core.db.models import JobArtifact
from core.decision_spec import ModelDecision
from core.errors import Conflict, DatasetError, InvalidInput, ServiceUnavailable
from core.status import JobStatus

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["predict"], route_class=SessionReleasingRoute)

MODEL_FILES = ("model.json", "model.safetensors")


@dataclass
class LoadedModel:
    model: Any
    classes: list[str]
    input_shape: tuple[int, ...]
    lock: threading.Lock
    preprocessing: dict[str, Any] | None = None  # how images became the training arrays (None: features)
    decide: ModelDecision = field(default_factory=ModelDecision)  # head, rule and threshold of model.json


class ModelCache:
    """The last `maxsize` models used, keyed by job id (a job's model never changes once it succeeded)."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, job_id: str, loader) -> LoadedModel:
        with self._lock:
            item = self._items.get(job_id)
            if item is not None:
                self._items.move_to_end(job_id)
                return item
            job_lock = self._loading.setdefault(job_id, threading.Lock())
        with job_lock:  # one load per job at a time
            with self._lock:
                item = self._items.get(job_id)
                if item is not None:
                    return item
            item = loader()
            with self._lock:
                self._items[job_id] = item
                self._items.move_to_end(job_id)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
                self._loading.pop(job_id, None)
            return item

    def __len__(self) -> int:
        return len(self._items)


def _load(session, storage, job_id: str) -> LoadedModel:
    from core.artifacts import load_model_from_artifacts

    rows = {
        r.name: r
        for r in session.execute(
            select(JobArtifact).where(JobArtifact.job_id == job_id, JobArtifact.name.in_(MODEL_FILES))
        ).scalars()
    }
    missing = [n for n in MODEL_FILES if n not in rows]
    if missing:
        raise Conflict(f"job {job_id} has no stored model ({', '.join(missing)} missing)")
    with tempfile.TemporaryDirectory(prefix="simtrain-model-") as tmp:
        for name in MODEL_FILES:
            try:
                data = storage.get_bytes(rows[name].storage_key)
            except FileNotFoundError as e:
                raise ServiceUnavailable(f"the stored model file {name} of job {job_id} is missing") from e
            (Path(tmp) / name).write_bytes(data)
        model, model_json = load_model_from_artifacts(Path(tmp))
    model.eval()
    classes = [str(c) for c in model_json.get("classes") or []]
    input_shape = tuple(int(d) for d in model_json["architecture"]["input_shape"])
    preprocessing = model_json.get("preprocessing")
    try:
        preprocessing = preprocessing if image_spec(preprocessing) is not None else None
    except ValueError:
        preprocessing = None
    decide = ModelDecision.from_model_json(model_json)
    return LoadedModel(model, classes, input_shape, threading.Lock(), preprocessing, decide)


def _inputs_array(inputs: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(inputs, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise InvalidInput("inputs", "rows must be lists of numbers, all of the same shape") from e
    n = arr.shape[0]
    width = math.prod(shape)
    if arr.shape[1:] != shape:
        if arr.ndim == 2 and arr.shape[1] == width:
            arr = arr.reshape((n, *shape))
        else:
            raise InvalidInput(
                "inputs",
                f"each row must have shape {list(shape)} (or {width} values), got {list(arr.shape[1:])}",
            )
    if not np.isfinite(arr).all():
        raise InvalidInput("inputs", "values must be finite numbers")
    return arr


@dataclass
class PredictBody:
    """What came to predict: feature rows, or image files (name, bytes)."""

    inputs: list[Any] | None = None
    images: list[tuple[str, bytes]] = field(default_factory=list)
    field: str = "inputs"  # the request field the rows or files came in


async def read_predict_body(request: Request) -> PredictBody:
    """JSON rows, JSON base64 images or multipart image files (the body is bounded by api.limits)."""
    settings = request.app.state.settings
    if request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        most = settings.max_predict_images
        async with request.form(max_files=4 * most + 4, max_fields=16, max_part_size=64 * 1024) as form:
            files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
            if not files:
                raise InvalidInput("files", "send one or more image files in the multipart field `files`")
            _check_count(len(files), most, "files")
            images = [(f.filename or f"files.{i}", await f.read()) for i, f in enumerate(files)]
            return PredictBody(images=images, field="files")
    raw = await request.body()
    try:
        body = PredictRequest.model_validate_json(raw)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        ) from None
    if body.inputs is not None:
        return PredictBody(inputs=body.inputs)
    _check_count(len(body.images), settings.max_predict_images, "images")
    images = [(f"images.{i}", _b64(text, f"images.{i}")) for i, text in enumerate(body.images)]
    return PredictBody(images=images, field="images")


def _check_count(count: int, most: int, name: str) -> None:
    if count > most:
        raise InvalidInput(name, f"at most {most} images (SIMTRAIN_MAX_PREDICT_IMAGES), got {count}")


def _b64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text.split(",", 1)[1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInput(name, "not base64") from e


def _images_array(body: PredictBody, loaded: LoadedModel, settings) -> np.ndarray:
    """Image files -> (N, C, H, W) raw pixel values (float32 0..255), as the training images were made."""
    if loaded.preprocessing is None:
        raise InvalidInput(body.field, "this model was trained on feature rows, not images: send `inputs`")
    arrays = []
    for name, data in body.images:
        try:
            arrays.append(
                prepare_image(data, loaded.preprocessing, max_pixels=settings.max_image_pixels, name=name)
            )
        except DatasetError as e:
            raise InvalidInput(body.field, e.reason) from None
    x = np.stack(arrays)
    if x.shape[1:] != loaded.input_shape:
        shapes = f"{list(loaded.input_shape)}, its preprocessing makes {list(x.shape[1:])}"
        raise Conflict(f"the model of this job takes {shapes}")
    return x.astype(np.float32)


@router.post(
    "/{job_id}/predict",
    response_model=PredictPublic,
    openapi_extra={"requestBody": predict_request_body()},
    responses={
        409: {"description": "the job has not succeeded"},
        422: {"description": "bad `inputs`, `images` or `files`"},
    },
)
def predict(
    job_id: str,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
    body: Annotated[PredictBody, Depends(read_predict_body)],
) -> PredictPublic:
    import torch

    job = jobstate.get_for_tenant(session, tenant, job_id)
    if job.status != JobStatus.succeeded.value:
        raise Conflict(
            f"job {job.id} is {job.status}; predictions need a succeeded job", details={"status": job.status}
        )
    if body.inputs is not None and len(body.inputs) > settings.max_predict_rows:
        raise InvalidInput("inputs", f"at most {settings.max_predict_rows} rows, got {len(body.inputs)}")
    cache: ModelCache = request.app.state.model_cache
    loaded = cache.get(job.id, lambda: _load(session, storage, job.id))
    if body.inputs is not None:
        x = _inputs_array(body.inputs, loaded.input_shape)
    else:
        x = _images_array(body, loaded, settings)
    with loaded.lock, torch.inference_mode():
        probs, pred = loaded.decide(loaded.model(torch.from_numpy(x)))
    classes = loaded.classes or [str(i) for i in range(probs.shape[1])]
    return PredictPublic(
        classes=classes,
        probabilities=[[round(float(p), 6) for p in row] for row in probs.tolist()],
        predictions=[classes[int(i)] for i in pred.tolist()],
    )
