"""A job's artifacts and predictions, for `SimtrainClient`.

    client.list_artifacts(job_id)                                  # model.onnx, metrics.json, ...
    client.download_artifact(job_id, "model.onnx", "out/model.onnx")   # streamed, written atomically
    client.predict(job_id, [[0.5] * 64])                           # classes, probabilities, predictions

A download is streamed into a temporary file and renamed once complete and, when its ETag names a
SHA-256 (artifacts and checkpoints do), once the bytes match it: bytes that do not are not written and
raise a TransportError (`etag_mismatch`). A prediction stores nothing, so it is retried like a GET.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from core.client.base import BaseClient, seg
from core.client.errors import TransportError, transport_error
from core.client.types import Artifact, Prediction

__all__ = ["ArtifactsMixin", "download_to"]


_SHA256_ETAG = re.compile(r'"([0-9a-f]{64})"')  # a strong ETag naming the SHA-256 of the bytes


def _write_checked(
    response: httpx.Response, path: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    """The streamed body into a temporary file beside `path`, renamed to `path` once complete and, when
    the ETag names a SHA-256, once the bytes match it (TransportError `etag_mismatch` otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    expected = _SHA256_ETAG.fullmatch(response.headers.get("ETag", "").strip())
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in response.iter_bytes():
                f.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress(response.num_bytes_downloaded, total)
        if expected and digest.hexdigest() != expected.group(1):
            raise TransportError(
                f"{path.name}: the bytes received have SHA-256 {digest.hexdigest()}, the ETag says "
                f"{expected.group(1)} ({response.request.method} {response.request.url})",
                code="etag_mismatch",
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def download_to(
    client: BaseClient, url: str, path: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    """GET `url` streamed into `path` (written atomically, checked against its ETag when that names a
    SHA-256); a transport failure is its client error."""
    response = client._send("GET", url, stream=True)
    try:
        return _write_checked(response, path, progress)
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
        """Stream an artifact to `path` (written atomically, checked against its ETag); returns the path.
        `progress(received, total)` after each chunk (total from Content-Length, None when unknown)."""
        return download_to(self, f"/v1/jobs/{seg(job_id)}/artifacts/{seg(name)}", Path(path), progress)

    def predict(self, job_id: str, inputs: list[Any]) -> Prediction:
        """Rows of feature values (flat or nested as the dataset's feature shape) -> classes, probabilities
        and the predicted class of each row; 409 (ConflictError) unless the job succeeded."""
        return self._json("POST", f"/v1/jobs/{seg(job_id)}/predict", json={"inputs": inputs}, idempotent=True)
