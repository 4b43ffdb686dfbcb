"""A job's kept checkpoints, for `SimtrainClient`.

    client.list_checkpoints(job_id)              # newest epoch first: epoch, step, metrics, kept_as, ...
    client.download_checkpoint(job_id, 7, "ckpt-7")   # ckpt-7/model.safetensors + ckpt-7/model.json

The two files of a download are what the job's final `model.safetensors` / `model.json` are for its last
epoch (`core.artifacts.load_model_from_artifacts(directory)` rebuilds the network from them); each is
streamed and written atomically, and checked against its ETag (the quoted SHA-256 of the file) when the
server sends one: bytes that do not match are not written and raise a TransportError (`etag_mismatch`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import httpx

from core.client.base import BaseClient, seg
from core.client.errors import TransportError, transport_error

__all__ = ["CHECKPOINT_FILES", "Checkpoint", "CheckpointsMixin"]

CHECKPOINT_FILES = ("model.safetensors", "model.json")
_SHA256_ETAG = re.compile(r'"([0-9a-f]{64})"')  # a strong ETag naming the SHA-256 of the bytes


class Checkpoint(TypedDict):
    epoch: int
    step: int | None
    metrics: dict[str, float | None]  # the epoch's validation metrics: val_loss, val_accuracy, ...
    size_bytes: int | None
    created_at: str | None
    kept_as: list[str]  # "best", "last"; "fallback": kept because a newer one is unusable


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


def _download_checked(
    client: BaseClient, url: str, path: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    """GET `url` streamed into `path`, checked against its ETag; a transport failure is its client error."""
    response = client._send("GET", url, stream=True)
    try:
        return _write_checked(response, path, progress)
    except httpx.TransportError as exc:
        raise transport_error(exc) from exc
    finally:
        response.close()


class CheckpointsMixin(BaseClient):
    def list_checkpoints(self, job_id: str) -> list[Checkpoint]:
        """The job's kept checkpoints, newest epoch first."""
        return self._json("GET", f"/v1/jobs/{seg(job_id)}/checkpoints")["items"]

    def download_checkpoint(
        self,
        job_id: str,
        epoch: int,
        directory: str | os.PathLike,
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> list[Path]:
        """Write the checkpoint of `epoch` into `directory` as model.safetensors and model.json; their
        paths. A checkpoint that is not kept is a NotFoundError; a file whose bytes do not match its ETag
        is a TransportError with code `etag_mismatch` (and is not written)."""
        url = f"/v1/jobs/{seg(job_id)}/checkpoints/{seg(int(epoch))}"
        return [
            _download_checked(self, f"{url}/{name}", Path(directory) / name, progress)
            for name in CHECKPOINT_FILES
        ]
