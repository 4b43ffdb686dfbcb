"""`RowView`: some rows of a feature array, in a given order, without copying them.

`select_classes` on a memory-mapped dataset that drops rows gives its `x` as a `RowView` of the memmap
and the kept row numbers, so the pixels stay in the file: nothing is read until rows are asked for.

    x = RowView(memmap, np.array([0, 5, 9]))   # rows 0, 5 and 9 of the memmap, in that order
    x.shape, x.dtype, len(x)                  # (3, *memmap.shape[1:]), memmap.dtype, 3
    batch = x[np.array([2, 0])]               # rows 9 and 0 of the memmap, as a new ndarray
    fewer = x.take(np.array([1, 2]))          # a RowView of rows 5 and 9 (still nothing read)
    whole = np.asarray(x)                     # every row read into memory (only for small views)

Indexing reads the rows asked for, like fancy indexing of the memmap does; `core.training.rows.RowReader`
reads a view's rows from the file with `os.pread` instead (`RowReader(view)`), so training never maps
them into the process. `base` is always the original array: a view of a view indexes it directly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["RowView"]


class RowView:
    """Rows `rows` (int64, in order, repeats allowed) of `base`, an `(N, *shape)` array left untouched."""

    def __init__(self, base: np.ndarray | RowView, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
            raise TypeError(f"rows must be a 1-D integer array, got {rows.dtype} {rows.shape}")
        rows = rows.astype(np.int64, copy=False)
        if isinstance(base, RowView):
            base, rows = base.base, base.rows[rows]
        if rows.size and (rows.min() < 0 or rows.max() >= len(base)):
            raise IndexError(f"rows must lie in [0, {len(base)})")
        self.base, self.rows = base, rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    @property
    def nbytes(self) -> int:
        return self.dtype.itemsize * math.prod(self.shape)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> np.ndarray:
        """The rows at `key` (an int, a slice, an integer or boolean array; then any per-row index)."""
        rest = ()
        if isinstance(key, tuple):
            key, rest = (key[0] if key else slice(None)), key[1:]
        if key is Ellipsis or key is None or any(k is Ellipsis or k is None for k in rest):
            raise IndexError("a RowView is indexed by rows first; index the result for the rest")
        rows = self.rows[key]
        picked = self.base[rows] if np.ndim(rows) == 0 else np.asarray(self.base[rows])
        if not rest:
            return picked
        return picked[rest] if np.ndim(rows) == 0 else picked[(slice(None), *rest)]

    def take(self, indices: np.ndarray) -> RowView:
        """The view's rows at `indices`, as a view of the same base."""
        return RowView(self, indices)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a RowView cannot become an array without a copy")
        out = np.asarray(self.base[self.rows])
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"RowView({len(self.rows)} of {len(self.base)} rows, {self.dtype}, row shape {self.shape[1:]})"
