"""Datasets of `SimtrainClient`: upload (with a progress callback), list (pages), get, delete, built-ins.

    ds = client.upload_dataset("flowers.zip", name="flowers", progress=lambda sent, total: ...)
    client.list_datasets()                  # every upload of the tenant, newest first
    client.datasets_page(limit=10)          # one page: {"items", "next_cursor"}
    client.builtin_datasets()               # builtin:digits, ... (usable without an upload)

An upload is safe to repeat (the same bytes again answer the dataset stored before), so it is retried
like a GET.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from core.client.base import BaseClient, seg
from core.client.types import BuiltinDataset, Dataset, DatasetPage

__all__ = ["DatasetsMixin", "ProgressCallback", "ProgressReader"]

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent so far, total bytes)."""


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
        progress: ProgressCallback | None = None,
    ) -> Dataset:
        """Upload a .npz, .csv, .parquet or .zip (image folders); `progress(sent, total)` as bytes go."""
        path = Path(path)
        data = {k: v for k, v in {"name": name, "label_column": label_column}.items() if v is not None}
        with path.open("rb") as f:
            body: Any = f if progress is None else ProgressReader(f, path.stat().st_size, progress)
            files = {"file": (path.name, body, "application/octet-stream")}
            return self._json("POST", "/v1/datasets", files=files, data=data, idempotent=True)

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
        """409 (ConflictError) while a queued or running job uses it."""
        self._json("DELETE", f"/v1/datasets/{seg(dataset_id)}")
