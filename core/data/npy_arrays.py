"""Array uploads: `.npz` (arrays `x`, `y`, optional `classes`) and `.npy` (the images, with the labels in a
second file part, `labels`). Never unpickled (`allow_pickle=False`; object arrays are refused).

`x` is read from its stream in row batches straight into the array sink, so memory holds one batch:

- uint8 `(N, H, W)`, `(N, C, H, W)` or `(N, H, W, C)` with C = 1 or 3 (channels first when the second
  axis is 1 or 3, else last): images, stored uint8 `(N, C, H, W)` at their own size, or resized to
  `limits.image_size` when one was chosen. A `.npy` already in the stored layout is moved into place
  as it is (no copy).
- anything else numeric: tabular features, stored float32 `(N, *features)` (a 1-D x is one feature).

Labels (`y` in an `.npz`; for an `.npy`, a `labels` part that is an `.npy` of N ints or strings, or a
UTF-8 `.txt` with one label per line) are ints or strings; an `.npz` may name its classes (`classes`).

    ds = read_npz(Path("d.npz"), limits, sink)
    ds = read_npy(Path("x.npy"), Path("y.npy"), "y.npy", limits, sink)
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from core.data.arrays import ArraySink
from core.data.dataset import ArrayDataset, all_finite
from core.data.image_rows import store_pixels
from core.data.labels import encode_labels, read_class_names
from core.data.limits import UploadLimits
from core.data.tabular import check_sizes
from core.data.zipsafe import open_entry, open_zip, read_entry
from core.errors import DatasetError

__all__ = ["LABEL_FILE_EXTENSIONS", "read_npy", "read_npz"]

LABEL_FILE_EXTENSIONS = (".npy", ".txt")
_BATCH_BYTES = 16 * 1024 * 1024
_PICKLE = "object arrays would need pickle, which is refused (allow_pickle=False)"


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    field: str
    offset: int | None = None  # where the data starts, in a file

    @property
    def row_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def read_header(stream, field: str) -> NpyHeader:
    """The header of an `.npy` stream (positioned at its data afterwards); object dtypes refused."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        # 3.0 differs from 2.0 only in allowing UTF-8 in the header (field names)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise DatasetError(field, f"not a readable .npy array: {e}") from e
    if dtype.hasobject:
        raise DatasetError(field, _PICKLE)
    if not shape:
        raise DatasetError(field, "a scalar, not an array")
    offset = stream.tell() if hasattr(stream, "tell") else None
    return NpyHeader(tuple(int(d) for d in shape), bool(fortran), dtype, field, offset)


def _batches(stream, header: NpyHeader, limits: UploadLimits) -> Iterator[np.ndarray]:
    """The rows of the array after `header`, as (B, *row_shape) arrays."""
    row_bytes = max(1, int(np.prod(header.row_shape, dtype=np.int64)) * header.dtype.itemsize)
    if header.fortran and len(header.shape) > 1:  # rows are not contiguous: read it whole, if small
        if header.shape[0] * row_bytes > limits.max_tabular_bytes:
            raise DatasetError(header.field, "a Fortran-ordered array this large: save it in C order")
        yield _rows(stream, header, header.shape[0], row_bytes)
        return
    step = max(1, _BATCH_BYTES // row_bytes)
    for start in range(0, header.shape[0], step):
        yield _rows(stream, header, min(step, header.shape[0] - start), row_bytes)


def _rows(stream, header: NpyHeader, count: int, row_bytes: int) -> np.ndarray:
    data = stream.read(count * row_bytes)
    if len(data) != count * row_bytes:
        raise DatasetError(header.field, "the array's data is truncated")
    order = "F" if header.fortran else "C"
    shape = (count, *header.row_shape) if not header.fortran else header.shape
    return np.frombuffer(data, dtype=header.dtype).reshape(shape, order=order)


def _image_layout(shape: tuple[int, ...], field: str) -> tuple[int, str]:
    """(channels, layout) of uint8 images: layout "nhw", "nchw" or "nhwc"."""
    if len(shape) == 3:
        return 1, "nhw"
    if shape[1] in (1, 3):
        return shape[1], "nchw"
    if shape[3] in (1, 3):
        return shape[3], "nhwc"
    raise DatasetError(
        field, f"uint8 images {list(shape)}: need 1 or 3 channels, (N, C, H, W) or (N, H, W, C)"
    )


def _as_nchw(batch: np.ndarray, layout: str) -> np.ndarray:
    if layout == "nhw":
        return batch[:, None]
    return batch.transpose(0, 3, 1, 2) if layout == "nhwc" else batch


def _is_images(header: NpyHeader) -> bool:
    return header.dtype == np.uint8 and len(header.shape) in (3, 4)


def _store_images(sink, header, batches, limits, source: Path | None) -> tuple[np.ndarray, dict]:
    channels, layout = _image_layout(header.shape, header.field)
    hw_axes = (1, 2) if layout in ("nhw", "nhwc") else (2, 3)
    own = (header.shape[hw_axes[0]], header.shape[hw_axes[1]])
    check_sizes(header.shape[0], None, limits)
    if source is not None and layout == "nchw" and not header.fortran and limits.image_hw(own) == own:
        from core.data.image_rows import check_side
        from core.data.images import image_preprocessing

        check_side(own, limits, header.field)
        if header.offset is None or source.stat().st_size < header.offset + header.nbytes:
            raise DatasetError(header.field, "the array's data is truncated")
        sink.adopt("x", source)  # already the stored form: moved, not copied
        return sink.open("x"), image_preprocessing(own, limits.resize, channels)
    nchw = (_as_nchw(b, layout) for b in batches)
    return store_pixels(sink, header.shape[0], nchw, limits, own, channels)


def _store_features(sink: ArraySink, header: NpyHeader, batches, limits: UploadLimits) -> np.ndarray:
    if header.dtype.kind not in "biuf":
        raise DatasetError(header.field, f"x must be numeric, got dtype {header.dtype}")
    row_shape = header.row_shape or (1,)
    check_sizes(header.shape[0], int(np.prod(row_shape)), limits)
    with sink.rows("x", header.shape[0], row_shape, np.float32) as rows:
        for batch in batches:
            batch = batch.reshape(len(batch), *row_shape)
            if batch.dtype.kind == "f" and not all_finite(batch):
                raise DatasetError(header.field, "x contains NaN or infinite values")
            rows.extend(batch)
    return sink.open("x")


def _store_x(sink, header, batches, limits, source: Path | None = None) -> tuple[np.ndarray, dict | None]:
    if _is_images(header):
        return _store_images(sink, header, batches, limits, source)
    return _store_features(sink, header, batches, limits), None


# ---------------------------------------------------------------------------------------------- .npz


def _load_member(zf, members: dict, name: str, budget: list[int]) -> np.ndarray | None:
    info = members.get(f"{name}.npy")
    if info is None:
        return None
    try:
        return np.load(io.BytesIO(read_entry(zf, info, budget)), allow_pickle=False)
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"file.{name}", f"cannot read array {name!r}: {e}") from e


def read_npz(path: Path, limits: UploadLimits, sink: ArraySink) -> ArrayDataset:
    zf, files = open_zip(path, limits)
    with zf:
        members = {info.filename: info for info in files}
        if "x.npy" not in members or "y.npy" not in members:
            raise DatasetError("file", f"npz must contain arrays 'x' and 'y', found {sorted(members)[:20]}")
        budget = [limits.max_uncompressed_bytes]
        y = _load_member(zf, members, "y", budget)
        raw_classes = _load_member(zf, members, "classes", budget)
        stream = open_entry(zf, members["x.npy"], budget)
        try:
            header = read_header(stream, "file.x")
            if y.ndim != 1 or len(y) != header.shape[0]:
                raise DatasetError("file.y", f"y must have shape ({header.shape[0]},), got {y.shape}")
            x, preprocessing = _store_x(sink, header, _batches(stream, header, limits), limits)
        finally:
            stream.close()
    classes = read_class_names(raw_classes) if raw_classes is not None else None
    labels, classes = encode_labels(y, classes, max_classes=limits.max_classes)
    return ArrayDataset(x, labels, classes, preprocessing=preprocessing)


# ---------------------------------------------------------------------------------------------- .npy


def _read_label_file(path: Path | None, name: str, n: int) -> np.ndarray:
    if path is None:
        raise DatasetError("labels", "an .npy upload needs its labels: a second file part `labels` "
                           "(.npy of N ints or strings, or .txt with one label per line)")  # fmt: skip
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    if suffix not in LABEL_FILE_EXTENSIONS:
        raise DatasetError("labels", f"labels must be one of {LABEL_FILE_EXTENSIONS}, got {suffix or name!r}")
    if suffix == ".txt":
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as e:
            raise DatasetError("labels", "labels are not valid UTF-8") from e
        labels = np.array([line.strip() for line in lines if line.strip()], dtype=np.str_)
    else:
        with open(path, "rb") as f:
            read_header(f, "labels")
        try:
            labels = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DatasetError("labels", f"cannot read the labels: {e}") from e
    if labels.ndim != 1 or len(labels) != n:
        raise DatasetError("labels", f"labels must have shape ({n},), got {labels.shape}")
    return labels


def read_npy(
    path: Path, labels_path: Path | None, labels_name: str, limits: UploadLimits, sink: ArraySink
) -> ArrayDataset:
    with open(path, "rb") as stream:
        header = read_header(stream, "file")
        raw = _read_label_file(labels_path, labels_name, header.shape[0])
        x, preprocessing = _store_x(sink, header, _batches(stream, header, limits), limits, source=path)
    labels, classes = encode_labels(raw, None, max_classes=limits.max_classes, field="labels")
    return ArrayDataset(x, labels, classes, preprocessing=preprocessing)
