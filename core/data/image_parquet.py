"""Parquet uploads of encoded images: what Hugging Face datasets export, and plain binary columns.

The image column is `image` or the only column that holds encoded images: a struct with a binary
`bytes` field (+ `path`; the Hugging Face `Image` feature) or a plain binary column. Labels come from
`limits.label_column` (default `label`): ints or strings; with a Hugging Face `ClassLabel`, the class
names are read from the file's `huggingface` schema metadata. Images are read in small batches, decoded
by `prepare_image` and written to the array sink one at a time, so memory holds one row group's image
column at most (bounded by `MAX_ROW_GROUP_BYTES`).

    column = image_column(parquet_file.schema_arrow)      # None: a tabular file
    ds = read_image_parquet(parquet_file, column, limits, sink)
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np

from core.data.arrays import ArraySink
from core.data.dataset import ArrayDataset
from core.data.image_rows import store_encoded
from core.data.labels import encode_labels
from core.data.limits import UploadLimits
from core.data.tabular import parquet_metadata_checks
from core.errors import DatasetError

__all__ = ["MAX_ROW_GROUP_BYTES", "image_column", "read_image_parquet"]

MAX_ROW_GROUP_BYTES = 256 * 1024 * 1024
_BATCH_ROWS = 32


def _is_binary(t) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def image_column(schema) -> str | None:
    """The column of encoded images in an Arrow schema; None when there is none (a tabular file)."""
    import pyarrow as pa

    found = []
    for field in schema:
        t = field.type
        if _is_binary(t) or (
            pa.types.is_struct(t) and any(f.name == "bytes" and _is_binary(f.type) for f in t)
        ):
            found.append(field.name)
    if not found:
        return None
    if "image" in found or len(found) == 1:
        return "image" if "image" in found else found[0]
    raise DatasetError("file", f"several image columns {found[:10]}; name the one to use 'image'")


def _hf_class_names(schema, label: str) -> list[str] | None:
    """Class names of a Hugging Face ClassLabel column, from the schema's metadata."""
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        features = json.loads(raw)["info"]["features"] if raw else {}
        names = features.get(label, {}).get("names")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if isinstance(names, list) and names and all(isinstance(n, str) and n for n in names):
        return names
    return None


def _labels(parquet_file, label: str, limits: UploadLimits) -> tuple[np.ndarray, list[str]]:
    schema = parquet_file.schema_arrow
    if label not in schema.names:
        raise DatasetError("file.label", f"no label column {label!r}; columns are {schema.names[:20]}")
    column = parquet_file.read(columns=[label]).column(label)
    if column.null_count:
        raise DatasetError("file.label", f"{column.null_count} rows have no label")
    raw = column.to_numpy(zero_copy_only=False)
    if raw.dtype == object:
        raw = raw.astype(np.str_)
    return encode_labels(raw, _hf_class_names(schema, label), max_classes=limits.max_classes)


def _check_row_groups(meta, column_index: list[int], limits: UploadLimits) -> None:
    parquet_metadata_checks(meta, limits, max_expanded=limits.max_uncompressed_bytes)
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        size = sum(group.column(j).total_uncompressed_size for j in column_index)
        if size > MAX_ROW_GROUP_BYTES:
            raise DatasetError(
                "file",
                f"row group {i} holds {size} bytes of images; write row groups of at most "
                f"{MAX_ROW_GROUP_BYTES} bytes (e.g. 100 rows)",
            )


def _images(parquet_file, column: str) -> Iterator[tuple[str, bytes]]:
    import pyarrow as pa

    row = 0
    for batch in parquet_file.iter_batches(batch_size=_BATCH_ROWS, columns=[column]):
        values = batch.column(0)
        if pa.types.is_struct(values.type):
            values = values.field("bytes")
        for value in values:
            data = value.as_py()
            if not data:
                raise DatasetError("file", f"row {row}: no image bytes in column {column!r}")
            yield f"row {row}", data
            row += 1


def read_image_parquet(parquet_file, column: str, limits: UploadLimits, sink: ArraySink) -> ArrayDataset:
    import pyarrow as pa

    meta = parquet_file.metadata
    paths = [meta.schema.column(j).path for j in range(meta.num_columns)]
    _check_row_groups(meta, [j for j, p in enumerate(paths) if p.split(".")[0] == column], limits)
    y, classes = _labels(parquet_file, limits.label_column, limits)
    try:
        x, preprocessing = store_encoded(sink, meta.num_rows, _images(parquet_file, column), limits)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError("file", f"cannot read parquet: {e}") from e
    return ArrayDataset(x, y, classes, preprocessing=preprocessing)
