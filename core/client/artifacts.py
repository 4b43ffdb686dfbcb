"""A job's artifacts and predictions, for `SimtrainClient`.

    client.list_artifacts(job_id)                                  # model.onnx, metrics.json, ...
    client.download_artifact(job_id, "model.onnx", "out/model.onnx")   # streamed, written atomically
    client.predict(job_id, [[0.5] * 64])                           # classes, probabilities, predictions

A prediction stores nothing, so it is retried like a GET.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from core.client.base import BaseClient, seg
from core.client.errors import transport_error
from core.client.types import Artifact, Prediction

__all__ = ["ArtifactsMixin", "download_to"]


def _write_atomically(
    response: httpx.Response, path: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    """The streamed body into a temporary file beside `path`, renamed to `path` once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in response.iter_bytes():
                f.write(chunk)
                if progress is not None:
                    progress(response.num_bytes_downloaded, total)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def download_to(
    client: BaseClient, url: str, path: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    """GET `url` streamed into `path` (written atomically); a transport failure is its client error."""
    response = client._send("GET", url, stream=True)
    try:
        return _write_atomically(response, path, progress)
    except httpx.TransportError as exc:
        raise transport_error(exc) from exc
    finally:
        response.close()


class ArtifactsMixin(BaseClient):
    def list_artifacts(self, job_id: str) -> list[Artifact]:
        return self._json("GET", f"/v1/jobs/{seg(job_id)}/artifacts")["items"]

    def download_artifact(
        self,
        job_id: str,
        name: str,
        path: str | os.PathLike,
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Path:
        """Stream an artifact to `path` (written atomically); returns the path. `progress(received,
        total)` after each chunk (total from Content-Length, None when unknown)."""
        return download_to(self, f"/v1/jobs/{seg(job_id)}/artifacts/{seg(name)}", Path(path), progress)

    def predict(self, job_id: str, inputs: list[Any]) -> Prediction:
        """Rows of feature values (flat or nested as the dataset's feature shape) -> classes, probabilities
        and the predicted class of each row; 409 (ConflictError) unless the job succeeded."""
        return self._json("POST", f"/v1/jobs/{seg(job_id)}/predict", json={"inputs": inputs}, idempotent=True)
