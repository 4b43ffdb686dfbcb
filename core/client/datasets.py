"""Datasets of `SimtrainClient`: upload (with its form options and a progress callback), register by URI
and wait for the import, list (pages), get, delete, built-ins.

    ds = client.upload_dataset("flowers.zip", name="flowers", image_size=32, resize="shorter_side",
                               progress=lambda sent, total: ...)
    ds = client.upload_dataset("x.npy", labels="y.npy")          # an .npy upload with its labels file
    ds = client.register_uri("https://example.com/train.parquet", name="flowers", sha256="9f86d0...")
    ds = client.wait_dataset(ds["id"], timeout=600)              # "ready", or "failed" with its `error`
    client.list_datasets()                  # every upload of the tenant, newest first
    client.datasets_page(limit=10)          # one page: {"items", "next_cursor"}
    client.builtin_datasets()               # builtin:digits, ... (usable without an upload)

The upload's options are the API's form fields: `name`, `label_column` (csv / Parquet), `image_size` (one
side `32`, `(24, 32)` or `"24x32"`: H x W), `resize` (`stretch`, `shorter_side`, `pad`) and the `labels`
file of an `.npy`. An upload and a registration are safe to repeat (the same bytes or reference again
answer the dataset stored before), so they are retried like a GET.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Literal

from core.client.base import BaseClient, seg
from core.client.types import BuiltinDataset, Dataset, DatasetPage

__all__ = ["DATASET_TERMINAL", "DatasetsMixin", "ImageSize", "ProgressCallback", "ProgressReader", "Resize"]

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent so far, total bytes)."""

ImageSize = int | str | Sequence[int]
"""One side (32), `"24x32"` or `(24, 32)`: the stored image size, H x W."""

Resize = Literal["stretch", "shorter_side", "pad"]

DATASET_TERMINAL = frozenset({"ready", "failed"})
"""A dataset's statuses that never change again (`importing` is the only other one)."""


def image_size_field(size: ImageSize | None) -> int | str | None:
    """The API's `image_size` value: a number stays a number, (H, W) becomes "HxW"."""
    if size is None or isinstance(size, int | str):
        return size
    height, width = size
    return f"{int(height)}x{int(width)}"


def _fields(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class ProgressReader:
    """A binary file that reports how far it has been read (httpx reads the upload from it in chunks)."""

    def __init__(self, file: IO[bytes], total: int, callback: ProgressCallback) -> None:
        self._file, self._total, self._callback = file, total, callback

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._callback(self._file.tell(), self._total)
        return chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return self._file.fileno()


class DatasetsMixin(BaseClient):
    def upload_dataset(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        label_column: str | None = None,
        image_size: ImageSize | None = None,
        resize: Resize | None = None,
        labels: str | os.PathLike | None = None,
        progress: ProgressCallback | None = None,
    ) -> Dataset:
        """Upload a .zip (image folders), .parquet, .csv, .npz or .npy (with its `labels` file: an .npy
        of N labels or a .txt); `progress(sent, total)` as the dataset file's bytes go."""
        path = Path(path)
        size = image_size_field(image_size)
        data = _fields(name=name, label_column=label_column, image_size=size, resize=resize)
        data = {k: str(v) for k, v in data.items()}
        with ExitStack() as stack:
            f = stack.enter_context(path.open("rb"))
            body: Any = f if progress is None else ProgressReader(f, path.stat().st_size, progress)
            files = {"file": (path.name, body, "application/octet-stream")}
            if labels is not None:
                labels = Path(labels)
                part = stack.enter_context(labels.open("rb"))
                files["labels"] = (labels.name, part, "application/octet-stream")
            return self._json("POST", "/v1/datasets", files=files, data=data, idempotent=True)

    def register_uri(
        self,
        uri: str,
        *,
        name: str | None = None,
        sha256: str | None = None,
        format: Literal["npz", "csv", "parquet", "zip"] | None = None,
        label_column: str | None = None,
        image_size: ImageSize | None = None,
        resize: Resize | None = None,
    ) -> Dataset:
        """A dataset the worker imports from `uri` (https, http, s3): `importing` at first (the same
        reference again: the dataset registered before, whatever its status). `wait_dataset` waits."""
        body = _fields(
            uri=uri, name=name, sha256=sha256, format=format, label_column=label_column,
            image_size=image_size_field(image_size), resize=resize,
        )  # fmt: skip
        return self._json("POST", "/v1/datasets", json=body, idempotent=True)

    def watch_dataset(
        self, dataset_id: str, *, interval: float = 1.0, timeout: float | None = None
    ) -> Iterator[Dataset]:
        """The dataset now and after every `interval` seconds, until it is `ready` or `failed` or `timeout`
        seconds passed (the last one yielded is then still importing)."""
        return self._watch(lambda: self.get_dataset(dataset_id), DATASET_TERMINAL, interval, timeout)

    def wait_dataset(self, dataset_id: str, *, timeout: float | None = None, poll: float = 1.0) -> Dataset:
        """Poll until the dataset is `ready` or `failed` (its `error`: code, message, field); TimeoutError
        after `timeout` seconds."""
        return self._wait(
            lambda: self.get_dataset(dataset_id), DATASET_TERMINAL, poll, timeout, f"dataset {dataset_id}"
        )

    def datasets_page(self, *, limit: int = 50, cursor: str | None = None) -> DatasetPage:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._json("GET", "/v1/datasets", params=params)

    def iter_datasets(self, *, page_size: int = 100) -> Iterator[Dataset]:
        return self._pages("/v1/datasets", {}, page_size)

    def list_datasets(self) -> list[Dataset]:
        """Every upload of the tenant, newest first (all pages)."""
        return list(self.iter_datasets())

    def builtin_datasets(self) -> list[BuiltinDataset]:
        return self._json("GET", "/v1/datasets/builtin")["items"]

    def get_dataset(self, dataset_id: str) -> Dataset:
        return self._json("GET", f"/v1/datasets/{seg(dataset_id)}")

    def delete_dataset(self, dataset_id: str) -> None:
        """409 (ConflictError) while a queued or running job uses it, or while it imports."""
        self._json("DELETE", f"/v1/datasets/{seg(dataset_id)}")
