"""Where parsed uploads put their arrays: on disk as `.npy` files written row batch by row batch, or in
memory when no directory is given (small uploads in tests).

`ArraySink(workdir, max_bytes)` allocates arrays (`np.lib.format.open_memmap` writes the header and
sizes the file; the rows are then written with plain file writes, batch by batch, so the process never
holds more than one batch of them); past `max_bytes` in all it raises `OutputTooLarge` before anything
is written (the store maps that to the tenant's quota).

    sink = ArraySink(Path("/scratch/ds"), max_bytes=2 << 30)
    with sink.rows("x", n, (3, 32, 32), np.uint8) as rows:
        for image in images:
            rows.append(image)
    x = sink.open("x")                   # read-only np.memmap of /scratch/ds/x.npy
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["BATCH_BYTES", "ArraySink", "OutputTooLarge", "RowWriter"]

BATCH_BYTES = 16 * 1024 * 1024


class OutputTooLarge(Exception):
    """The arrays of an upload would take more than the bytes left to store them."""

    def __init__(self, nbytes: int, limit: int) -> None:
        super().__init__(f"the converted dataset needs {nbytes} bytes, {limit} are left")
        self.nbytes, self.limit = nbytes, limit


class RowWriter:
    """Fills an `(n, *row_shape)` array in row order; `target` is an in-memory array or an `.npy` path."""

    def __init__(self, target: np.ndarray | Path, n: int, row_shape: tuple[int, ...], dtype) -> None:
        self.n, self.row_shape, self.dtype = n, tuple(row_shape), np.dtype(dtype)
        self.count = 0
        self._memory = target if isinstance(target, np.ndarray) else None
        self._file = None
        if self._memory is None:
            header = np.lib.format.open_memmap(target, mode="w+", dtype=self.dtype, shape=(n, *row_shape))
            self._offset = header.offset
            del header  # the file now has its header and its full (sparse) size
            self._file = open(target, "r+b")  # noqa: SIM115 - closed in close()
        row_bytes = max(1, int(np.prod(row_shape, dtype=np.int64)) * self.dtype.itemsize)
        self._batch = np.empty((max(1, min(n, BATCH_BYTES // row_bytes)), *row_shape), self.dtype)
        self._fill = 0

    def append(self, row: np.ndarray) -> None:
        if self.count + self._fill >= self.n:
            raise ValueError("more rows than allocated")
        self._batch[self._fill] = row
        self._fill += 1
        if self._fill == len(self._batch):
            self.flush()

    def extend(self, rows: np.ndarray) -> None:
        """Many rows at once (converted to the dtype as they are copied)."""
        for start in range(0, len(rows), len(self._batch)):
            part = rows[start : start + len(self._batch)]
            self.flush()
            self._batch[: len(part)] = part
            self._fill = len(part)
            self.flush()

    def flush(self) -> None:
        if not self._fill:
            return
        rows = self._batch[: self._fill]
        if self._memory is not None:
            self._memory[self.count : self.count + self._fill] = rows
        else:
            self._file.seek(self._offset + self.count * rows[0].nbytes)
            self._file.write(rows.tobytes())
        self.count += self._fill
        self._fill = 0

    def close(self) -> None:
        self.flush()
        self.abort()
        if self.count != self.n:
            raise ValueError(f"{self.count} rows written, {self.n} allocated")

    def abort(self) -> None:
        """Close the file without flushing what is buffered."""
        if self._file is not None:
            self._file.close()
            self._file = None


class ArraySink:
    """Allocates the arrays of one parsed upload (see the module docstring)."""

    def __init__(self, workdir: Path | None = None, max_bytes: int | None = None) -> None:
        self.workdir = Path(workdir) if workdir is not None else None
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.allocated = 0
        self._sizes: dict[str, int] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def path(self, name: str) -> Path | None:
        return None if self.workdir is None else self.workdir / f"{name}.npy"

    def reserve(self, name: str, nbytes: int) -> None:
        """Count `nbytes` of array `name` against `max_bytes` (OutputTooLarge past it)."""
        if self.max_bytes is not None and self.allocated + nbytes > self.max_bytes:
            raise OutputTooLarge(self.allocated + nbytes, self.max_bytes)
        self.allocated += nbytes
        self._sizes[name] = self._sizes.get(name, 0) + nbytes

    @contextmanager
    def rows(self, name: str, n: int, row_shape: tuple[int, ...], dtype) -> Iterator[RowWriter]:
        """A RowWriter for array `name`; on leaving, the array is complete (or removed on error)."""
        self.reserve(name, n * int(np.prod(row_shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        path = self.path(name)
        writer = None
        try:
            target: np.ndarray | Path = np.empty((n, *row_shape), dtype) if path is None else path
            writer = RowWriter(target, n, row_shape, dtype)
            yield writer
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            self.discard(name)
            raise
        if path is None:
            self._arrays[name] = target

    def open(self, name: str) -> np.ndarray:
        """The finished array `name`: a read-only memmap on disk, the array itself in memory."""
        path = self.path(name)
        if path is None:
            return self._arrays[name]
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def adopt(self, name: str, source: Path) -> None:
        """Make the finished `.npy` file `source` array `name` (moved, not copied)."""
        self.reserve(name, os.path.getsize(source))
        path = self.path(name)
        if path is None:
            self._arrays[name] = np.load(source, allow_pickle=False)
        else:
            os.replace(source, path)

    def rename(self, old: str, new: str) -> None:
        old_path, new_path = self.path(old), self.path(new)
        if old_path is None:
            self._arrays[new] = self._arrays.pop(old)
        else:
            os.replace(old_path, new_path)
        self._sizes[new] = self._sizes.pop(old, 0)

    def discard(self, name: str) -> None:
        """Remove array `name` and give back its bytes."""
        self.allocated -= self._sizes.pop(name, 0)
        path = self.path(name)
        if path is None:
            self._arrays.pop(name, None)
        else:
            path.unlink(missing_ok=True)
