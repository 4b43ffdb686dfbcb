"""A job's kept checkpoints, for `SimtrainClient`.

    client.list_checkpoints(job_id)              # newest epoch first: epoch, step, metrics, kept_as, ...
    client.download_checkpoint(job_id, 7, "ckpt-7")   # ckpt-7/model.safetensors + ckpt-7/model.json

The two files of a download are what the job's final `model.safetensors` / `model.json` are for its last
epoch (`core.artifacts.load_model_from_artifacts(directory)` rebuilds the network from them); each is
streamed, written atomically and checked against its ETag (the quoted SHA-256 of the file) as artifacts
are (`core.client.artifacts.download_to`): bytes that do not match are not written and raise a
TransportError (`etag_mismatch`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from core.client.artifacts import download_to
from core.client.base import BaseClient, seg

__all__ = ["CHECKPOINT_FILES", "Checkpoint", "CheckpointsMixin"]

CHECKPOINT_FILES = ("model.safetensors", "model.json")


class Checkpoint(TypedDict):
    epoch: int
    step: int | None
    metrics: dict[str, float | None]  # the epoch's validation metrics: val_loss, val_accuracy, ...
    size_bytes: int | None
    created_at: str | None
    kept_as: list[str]  # "best", "last"; "fallback": kept because a newer one is unusable


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
            download_to(self, f"{url}/{name}", Path(directory) / name, progress) for name in CHECKPOINT_FILES
        ]
