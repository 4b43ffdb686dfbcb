"""`RowReader`: rows of a dataset's feature array by index, with bounded memory, in any process.

    reader = RowReader(ds.x)
    batch = reader.read(np.array([7, 3, 9]))          # (3, *feature_shape), a new contiguous array
    for chunk in reader.chunks(train_idx, max_bytes=32 << 20):
        ...                                           # the rows of train_idx, in order, chunk by chunk

An in-memory array is indexed. A file-backed `np.memmap` (mode "r" or "r+", C-contiguous: what
`np.load(path, mmap_mode="r")` returns, or a slice of it) is read with `os.pread`, one call per run of
consecutive rows: no page of the file is mapped into the reading process, so its resident memory stays
what the batch needs however large the file (reading through the mapping would leave every page touched
in the process's RSS). A reader pickles as (path, offset, dtype, shape), never the data, so a DataLoader
worker opens the file itself. A `core.data.row_view.RowView` (what `select_classes` gives for a memmap)
is read as its base array, row numbers mapped through the view's.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Iterator

import numpy as np

from core.data.row_view import RowView

__all__ = ["RowReader"]


class RowReader:
    """Rows of an (N, *shape) array; see the module docstring."""

    def __init__(self, x: np.ndarray | RowView) -> None:
        self.selected = x.rows if isinstance(x, RowView) else None  # rows of the base, per row of x
        x = x.base if isinstance(x, RowView) else x
        self.dtype = np.dtype(x.dtype)
        self.shape = tuple(int(d) for d in x.shape[1:])
        self.num_rows = int(x.shape[0])
        self.row_bytes = self.dtype.itemsize * math.prod(self.shape)
        source = _file_source(x)
        self.array = None if source is not None else x
        self.path, self.offset = source if source is not None else (None, 0)
        self._fd: int | None = None
        self._fd_pid: int | None = None

    @property
    def file_backed(self) -> bool:
        return self.path is not None

    def nbytes(self, num_rows: int) -> int:
        return num_rows * self.row_bytes

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows at `rows` (int64, any order, repeats allowed) as a new C-contiguous array."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.selected is not None:
            rows = self.selected[rows]
        if self.array is not None:
            return np.ascontiguousarray(self.array[rows])
        out = np.empty((len(rows), *self.shape), dtype=self.dtype)
        if len(rows) == 0:
            return out
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1  # runs of consecutive rows
        for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(ordered)]):
            block = self._pread(int(ordered[lo]), int(hi - lo))
            out[order[lo:hi]] = block
        return out

    def chunks(self, rows: np.ndarray, max_bytes: int) -> Iterator[np.ndarray]:
        """The rows at `rows`, in order, as arrays of at most `max_bytes` (at least one row each)."""
        step = max(1, max_bytes // max(self.row_bytes, 1))
        for start in range(0, len(rows), step):
            yield self.read(rows[start : start + step])

    def _pread(self, first: int, count: int) -> np.ndarray:
        if not 0 <= first and first + count <= self.num_rows:
            raise IndexError(f"rows {first}..{first + count - 1} outside 0..{self.num_rows - 1}")
        size, position = count * self.row_bytes, self.offset + first * self.row_bytes
        data = bytearray(size)
        view, done = memoryview(data), 0
        while done < size:  # pread may return fewer bytes than asked
            got = os.preadv(self._file(), [view[done:]], position + done)
            if got == 0:
                raise OSError(f"{self.path}: unexpected end of file at byte {position + done}")
            done += got
        return np.frombuffer(data, dtype=self.dtype).reshape(count, *self.shape)

    def _file(self) -> int:
        if self._fd is None or self._fd_pid != os.getpid():  # a forked worker opens its own
            self._fd, self._fd_pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return self._fd

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_fd_pid": None}

    def __del__(self) -> None:
        if self._fd is not None and self._fd_pid == os.getpid():
            os.close(self._fd)


def _file_source(x: np.ndarray) -> tuple[str, int] | None:
    """(path, byte offset of row 0) of a file-backed, C-contiguous memmap; None for anything else."""
    mm = getattr(x, "_mmap", None)
    if not isinstance(x, np.memmap) or mm is None or getattr(x, "filename", None) is None:
        return None
    if x.mode not in ("r", "r+") or not x.flags.c_contiguous:
        return None
    start = x.offset - x.offset % mmap.ALLOCATIONGRANULARITY  # where np.memmap began its mapping
    mapped_at = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    return os.fspath(x.filename), start + (x.ctypes.data - mapped_at)
