"""Predictions from a succeeded job's trained model (loaded from its artifacts, cached per job)."""

from __future__ import annotations

import math
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from sqlalchemy import select

from api.deps import CurrentTenant, SessionDep, SettingsDep, StorageDep
from api.routes import API_PREFIX
from api.schemas import PredictPublic, PredictRequest
from core.db import jobs as jobstate
from core.db.models import JobArtifact
from core.errors import Conflict, InvalidInput, ServiceUnavailable
from core.status import JobStatus

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["predict"])

MODEL_FILES = ("model.json", "model.safetensors")


@dataclass
class LoadedModel:
    model: Any
    classes: list[str]
    input_shape: tuple[int, ...]
    lock: threading.Lock


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
    return LoadedModel(model=model, classes=classes, input_shape=input_shape, lock=threading.Lock())


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


@router.post(
    "/{job_id}/predict",
    response_model=PredictPublic,
    responses={409: {"description": "the job has not succeeded"}, 422: {"description": "bad `inputs`"}},
)
def predict(
    job_id: str,
    body: PredictRequest,
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: CurrentTenant,
) -> PredictPublic:
    import torch

    job = jobstate.get_for_tenant(session, tenant, job_id)
    if job.status != JobStatus.succeeded.value:
        raise Conflict(
            f"job {job.id} is {job.status}; predictions need a succeeded job", details={"status": job.status}
        )
    if len(body.inputs) > settings.max_predict_rows:
        raise InvalidInput("inputs", f"at most {settings.max_predict_rows} rows, got {len(body.inputs)}")
    cache: ModelCache = request.app.state.model_cache
    loaded = cache.get(job.id, lambda: _load(session, storage, job.id))
    x = _inputs_array(body.inputs, loaded.input_shape)
    with loaded.lock, torch.inference_mode():
        logits = loaded.model(torch.from_numpy(x))
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    classes = loaded.classes or [str(i) for i in range(probs.shape[1])]
    return PredictPublic(
        classes=classes,
        probabilities=[[round(float(p), 6) for p in row] for row in probs],
        predictions=[classes[int(i)] for i in probs.argmax(axis=1)],
    )
