"""Parse an uploaded dataset file into an `ArrayDataset`, safely.

Formats (chosen by the file name's extension):

- `.zip`      an image folder: `<class>/<image>` or `<top>/<class>/<image>`; PNG, JPEG or BMP
              (`core.data.image_zip`).
- `.parquet`  encoded images (the Hugging Face layout: a struct column `image` with `bytes`, or a plain
              binary column) with a label column (`core.data.image_parquet`); otherwise tabular: a label
              column and numeric features, like csv (`core.data.tabular`).
- `.npz`      arrays `x`, `y` (ints or strings), optional `classes`; uint8 `x` of 3 or 4 dimensions are
              images, anything else tabular (`core.data.npy_arrays`). No pickles.
- `.npy`      uint8 images (or numeric features), with the labels in a second file (`labels`).
- `.csv`      UTF-8, a header row, a label column (`limits.label_column`, default "label"), numeric features.

Images become uint8 `(N, C, H, W)` at `limits.image_size` (resized as `limits.resize` says; 1 channel when
every image is gray, else RGB) with a `preprocessing` record (`core.data.images`); tabular data float32.
With `workdir`, `x` is written there as `x.npy` while it is parsed (row batch by row batch: memory holds
one batch) and returned as a memmap; without, it is built in memory. Everything untrusted is bounded by
`UploadLimits`; every problem is a `DatasetError(field, reason)`, and `OutputTooLarge` when the arrays
would pass `limits.max_stored_bytes`.

    ds = parse_upload(Path("/tmp/upload-123"), "flowers.zip", limits=UploadLimits(image_size=32),
                      workdir=Path("/tmp/ds-123"))
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from core.data.arrays import ArraySink
from core.data.dataset import ArrayDataset, check_trainable, is_image_array
from core.data.image_parquet import image_column, read_image_parquet
from core.data.image_zip import IMAGE_EXTENSIONS, read_image_zip
from core.data.limits import UploadLimits
from core.data.npy_arrays import read_npy, read_npz
from core.data.tabular import check_sizes, read_csv, read_tabular_parquet
from core.errors import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "SUPPORTED_EXTENSIONS", "UploadLimits", "parse_upload", "upload_format"]

SUPPORTED_EXTENSIONS = (".npz", ".npy", ".csv", ".parquet", ".zip")


def upload_format(filename: str) -> str:
    """ "zip", "npz", ... from the file name's extension; DatasetError("file") for any other."""
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise DatasetError(
            "file",
            f"unsupported file type {suffix or '(none)'!r}; use one of {', '.join(SUPPORTED_EXTENSIONS)}",
        )
    return suffix[1:]


def parse_upload(
    path: Path,
    filename: str,
    *,
    limits: UploadLimits,
    workdir: Path | None = None,
    labels: Path | None = None,
    labels_name: str = "",
) -> ArrayDataset:
    """Read the uploaded file at `path` (its original name is `filename`) into a trainable ArrayDataset;
    `labels` is the labels file of an `.npy` upload (its name: `labels_name`)."""
    fmt = upload_format(filename)
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetError("file", f"cannot read the upload: {e}") from e
    if size > limits.max_bytes:
        raise DatasetError("file", f"file is {size} bytes, the limit is {limits.max_bytes}")
    if size == 0:
        raise DatasetError("file", "file is empty")
    sink = ArraySink(workdir, limits.max_stored_bytes)
    if fmt == "npy":
        ds = read_npy(path, labels, labels_name, limits, sink)
    else:
        ds = {"npz": read_npz, "csv": _csv, "parquet": _parquet, "zip": read_image_zip}[fmt](
            path, limits, sink
        )
    features = None if is_image_array(ds.x) else int(np.prod(ds.feature_shape))
    check_sizes(ds.num_samples, features, limits)
    check_trainable(ds, max_classes=limits.max_classes)
    return ds


def _csv(path: Path, limits: UploadLimits, sink: ArraySink) -> ArrayDataset:
    return read_csv(path, limits)


def _parquet(path: Path, limits: UploadLimits, sink: ArraySink) -> ArrayDataset:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as parquet_file:
            column = image_column(parquet_file.schema_arrow)
            if column is not None:
                return read_image_parquet(parquet_file, column, limits, sink)
            return read_tabular_parquet(path, parquet_file, limits)
    except DatasetError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError("file", f"cannot read parquet: {e}") from e
