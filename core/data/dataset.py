"""Datasets as arrays: `ArrayDataset`, class selection, a stratified split, and the `.npz` form of earlier
versions.

Every dataset simtrain trains on ends up as one `ArrayDataset`: features `x`, int64 labels `y` in [0, C)
and the class names. `x` is either float32 `(N, *feature_shape)` (tabular data) or uint8 images
`(N, C, H, W)` (kept uint8: the model standardises raw pixel values itself), possibly a read-only
`np.memmap` of the stored file (`core.data.stored`), which nothing here copies: `select_classes` and
`subset` keep `x` itself when no row is dropped, and `select_classes` that drops rows of a memmap gives a
`RowView` of it (`core.data.row_view`: the memmap and the kept row numbers, read only when rows are asked
for). `preprocessing` says how raw images became `x` (`core.data.images`), None for tabular data.

    ds = ArrayDataset(x, y, ["cat", "dog"])
    ds = select_classes(ds, ["dog", "cat"])          # reorder / subset, labels remapped
    train_idx, val_idx = stratified_split(ds.y, 0.2, seed=0)
    batch = ds.x[train_idx[:64]]                     # a batch (read from disk for a memmap)
    save_npz(ds, "ds.npz"); ds = load_npz("ds.npz")  # the single-file form (datasets stored before)
"""

from __future__ import annotations

import mmap
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.data.row_view import RowView
from core.errors import DatasetError

__all__ = [
    "MIN_SAMPLES_PER_CLASS",
    "ArrayDataset",
    "all_finite",
    "check_trainable",
    "load_npz",
    "save_npz",
    "select_classes",
    "split",
    "stratified_split",
    "subset",
]

MIN_SAMPLES_PER_CLASS = 2  # one for training and one for validation


_CHUNK_BYTES = 16 * 1024 * 1024


def all_finite(x: np.ndarray) -> bool:
    """No NaN or infinity in `x`, checked in row chunks (a memmap is read, never loaded whole).

    A memmap of a whole `.npy` file is read with file reads, chunk by chunk, rather than through its
    mapping: the pages it reads then stay out of the process's resident set (a 1 GiB upload would
    otherwise count 1 GiB of mapped file against the API's RSS)."""
    if x.dtype.kind not in "fc":
        return True
    step = max(1, _CHUNK_BYTES // max(1, x[:1].nbytes))
    if _whole_file_memmap(x):
        return _file_all_finite(x, step)
    return all(np.isfinite(x[i : i + step]).all() for i in range(0, len(x), step))


def _whole_file_memmap(x: np.ndarray) -> bool:
    """`x` is what `np.load(path, mmap_mode=...)` gave: C-ordered rows from `x.offset` to the file's end."""
    return (
        isinstance(x, np.memmap) and isinstance(x.base, mmap.mmap) and x.flags.c_contiguous
        and x.filename is not None and x.offset + x.nbytes == os.path.getsize(x.filename)
    )  # fmt: skip


def _file_all_finite(x: np.memmap, step: int) -> bool:
    row_items = int(np.prod(x.shape[1:], dtype=np.int64))
    with open(x.filename, "rb") as f:
        f.seek(x.offset)
        for start in range(0, len(x), step):
            chunk = np.fromfile(f, dtype=x.dtype, count=min(step, len(x) - start) * row_items)
            if not np.isfinite(chunk).all():
                return False
    return True


def is_image_array(x: np.ndarray) -> bool:
    """uint8 `(N, C, H, W)`: the stored form of images."""
    return x.dtype == np.uint8 and x.ndim == 4


@dataclass(eq=False)
class ArrayDataset:
    """Features `x`, labels `y` (int64 in [0, C)), `classes` (C names) and the `preprocessing` of images.

    Construction validates and normalises: uint8 images `(N, C, H, W)` stay as they are (an `np.memmap`
    or a `RowView` too, never copied); other numeric `x` becomes contiguous float32 (a float32 memmap,
    or a `RowView` of one, stays as it is);
    `y` becomes int64; shapes, label range, class names and finiteness are checked (DatasetError).
    """

    x: np.ndarray
    y: np.ndarray
    classes: list[str] = field(default_factory=list)
    preprocessing: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        x = self.x if isinstance(self.x, np.ndarray | RowView) else np.asarray(self.x)
        y = np.asarray(self.y)
        if x.dtype.kind not in "biuf":
            raise DatasetError("file.x", f"features must be numeric, got dtype {x.dtype}")
        if x.ndim < 2:
            raise DatasetError("file.x", f"features must have shape (N, features...), got {x.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DatasetError("file.label", f"labels must be a 1-D integer array, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DatasetError("file", f"{len(x)} feature rows but {len(y)} labels")
        self.classes = _check_classes(self.classes)
        if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
            raise DatasetError("file.label", f"labels must lie in [0, {len(self.classes)})")
        if not is_image_array(x) and not _float32_file(x):
            x = np.ascontiguousarray(x, dtype=np.float32)
        # a RowView holds rows of a dataset's x that were checked when that dataset was built
        if not isinstance(x, RowView) and not all_finite(x):
            raise DatasetError("file", "features contain NaN or infinite values")
        self.x, self.y = x, np.ascontiguousarray(y, dtype=np.int64)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x.shape[1:])

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_counts(self) -> list[int]:
        """Samples per class, in class order."""
        return [int(n) for n in np.bincount(self.y, minlength=self.num_classes)]

    @property
    def dtype(self) -> str:
        """The stored dtype of `x`: "uint8" (images) or "float32"."""
        return str(self.x.dtype)

    def summary(self) -> dict:
        """A JSON-ready description (no data)."""
        return {
            "num_samples": self.num_samples,
            "feature_shape": list(self.feature_shape),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "class_counts": self.class_counts,
            "dtype": self.dtype,
            "preprocessing": self.preprocessing,
        }


def _float32_file(x: np.ndarray | RowView) -> bool:
    """float32 features kept as they are: a C-contiguous memmap, or a view of its rows."""
    base = x.base if isinstance(x, RowView) else x
    return isinstance(base, np.memmap) and base.dtype == np.float32 and base.flags.c_contiguous


def _check_classes(raw: list) -> list[str]:
    classes = [str(c) for c in raw]
    if not classes:
        raise DatasetError("classes", "at least one class name is required")
    if any(not c for c in classes):
        raise DatasetError("classes", "class names must be non-empty")
    if len(set(classes)) != len(classes):
        raise DatasetError("classes", "class names must be unique")
    return classes


def check_trainable(ds: ArrayDataset, *, max_classes: int | None = None) -> None:
    """Raise DatasetError unless `ds` has >= 2 classes, each with >= MIN_SAMPLES_PER_CLASS samples."""
    if ds.num_classes < 2:
        raise DatasetError("classes", f"need at least 2 classes, got {ds.num_classes}")
    if max_classes is not None and ds.num_classes > max_classes:
        raise DatasetError("classes", f"{ds.num_classes} classes, the limit is {max_classes}")
    for name, count in zip(ds.classes, ds.class_counts):
        if count == 0:
            raise DatasetError("classes", f"class {name!r} has no samples")
        if count < MIN_SAMPLES_PER_CLASS:
            raise DatasetError(
                "classes", f"class {name!r} has {count} sample(s); at least {MIN_SAMPLES_PER_CLASS} needed"
            )


def save_npz(ds: ArrayDataset, path: str | os.PathLike) -> None:
    """Write `ds` as an uncompressed .npz (arrays x, y, classes) atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x=ds.x, y=ds.y, classes=np.array(ds.classes, dtype=np.str_))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path: str | os.PathLike) -> ArrayDataset:
    """Read a dataset written by `save_npz` (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return ArrayDataset(z["x"], z["y"], [str(c) for c in z["classes"]])
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError("file", f"cannot read dataset: {e}") from e


def _same(ds: ArrayDataset, y: np.ndarray, classes: list[str], x=None) -> ArrayDataset:
    """`ds` with new labels / classes and the very same `x`, or the given rows of it (a RowView):
    no copy, no new validation pass over x."""
    out = ArrayDataset(ds.x[:0], y[:0], classes, preprocessing=ds.preprocessing)
    out.x, out.y = ds.x if x is None else x, np.ascontiguousarray(y, dtype=np.int64)
    return out


def subset(ds: ArrayDataset, indices: np.ndarray) -> ArrayDataset:
    """The samples at `indices`, with the same classes; `x` itself when `indices` is every row in order."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) == ds.num_samples and np.array_equal(indices, np.arange(ds.num_samples)):
        return _same(ds, ds.y.copy(), list(ds.classes))
    return ArrayDataset(ds.x[indices], ds.y[indices], list(ds.classes), preprocessing=ds.preprocessing)


def select_classes(ds: ArrayDataset, classes: list[str] | None) -> ArrayDataset:
    """Keep only `classes` (in that order; None keeps all), remapping labels to positions in `classes`."""
    if classes is None:
        return ds
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise DatasetError("classes", "selected classes must be unique")
    if not classes:
        raise DatasetError("classes", "select at least one class")
    position = {name: i for i, name in enumerate(ds.classes)}
    unknown = [c for c in classes if c not in position]
    if unknown:
        raise DatasetError("classes", f"unknown class(es) {unknown}; the dataset has {ds.classes}")
    old_to_new = np.full(ds.num_classes, -1, dtype=np.int64)
    for new, name in enumerate(classes):
        old_to_new[position[name]] = new
    new_y = old_to_new[ds.y]
    keep = new_y >= 0
    if keep.all():  # only labels change: x is kept (a memmap is not read)
        return _same(ds, new_y, classes)
    if isinstance(ds.x, np.memmap | RowView):  # the kept rows stay in the file (nothing is read)
        return _same(ds, new_y[keep], classes, x=RowView(ds.x, np.flatnonzero(keep)))
    return ArrayDataset(ds.x[keep], new_y[keep], classes, preprocessing=ds.preprocessing)


def stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified (train_idx, val_idx), both sorted int64.

    Each class with n >= 2 samples puts round(n * val_fraction), clamped to [1, n - 1], into validation;
    a class with one sample goes to training. The split depends only on (y, val_fraction, seed).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = 0 if len(idx) < 2 else min(max(round(len(idx) * val_fraction), 1), len(idx) - 1)
        val_parts.append(idx[:n_val])
        train_parts.append(idx[n_val:])
    empty = np.zeros(0, dtype=np.int64)
    train = np.sort(np.concatenate(train_parts or [empty])).astype(np.int64)
    val = np.sort(np.concatenate(val_parts or [empty])).astype(np.int64)
    return train, val


def split(ds: ArrayDataset, val_fraction: float, seed: int) -> tuple[ArrayDataset, ArrayDataset]:
    """`stratified_split` applied to a dataset: (train, val) datasets."""
    train_idx, val_idx = stratified_split(ds.y, val_fraction, seed)
    return subset(ds, train_idx), subset(ds, val_idx)
