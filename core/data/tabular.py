"""Tabular uploads: `.csv` and `.parquet` with a label column and numeric feature columns -> float32 x.

Tabular data is parsed in memory (pandas), so it is bounded by `limits.max_tabular_bytes` (the csv's
size, the Parquet file's uncompressed size) besides samples and features.

    ds = read_csv(Path("iris.csv"), UploadLimits())
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from core.data.dataset import ArrayDataset
from core.data.labels import encode_labels
from core.data.limits import UploadLimits
from core.errors import DatasetError

__all__ = ["check_sizes", "from_frame", "parquet_metadata_checks", "read_csv", "read_tabular_parquet"]


def check_sizes(num_samples: int, num_features: int | None, limits: UploadLimits) -> None:
    """Samples (and, for tabular data, values per sample) within the limits; at least one sample."""
    if num_samples > limits.max_samples:
        raise DatasetError("file", f"{num_samples} samples, the limit is {limits.max_samples}")
    if num_features is not None and num_features > limits.max_features:
        raise DatasetError("file", f"{num_features} values per sample, the limit is {limits.max_features}")
    if num_samples == 0:
        raise DatasetError("file", "the dataset has no samples")


def read_csv(path: Path, limits: UploadLimits) -> ArrayDataset:
    import pandas as pd

    if path.stat().st_size > limits.max_tabular_bytes:
        raise DatasetError("file", f"a csv is parsed in memory: at most {limits.max_tabular_bytes} bytes")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError("file", f"csv is not valid UTF-8 (byte offset {e.start})") from e
    del raw
    if "\x00" in text:
        raise DatasetError("file", "csv contains NUL characters")
    try:
        frame = pd.read_csv(io.StringIO(text), low_memory=False)
    except pd.errors.EmptyDataError as e:
        raise DatasetError("file", "csv is empty") from e
    except (pd.errors.ParserError, ValueError) as e:
        raise DatasetError("file", f"cannot parse csv: {e}") from e
    return from_frame(frame, limits)


def parquet_metadata_checks(meta, limits: UploadLimits, *, max_expanded: int) -> None:
    """Rows and uncompressed size of a Parquet file (from its footer, before reading any data)."""
    if meta.num_rows > limits.max_samples:
        raise DatasetError("file", f"{meta.num_rows} rows, the limit is {limits.max_samples}")
    expanded = sum(
        meta.row_group(i).column(j).total_uncompressed_size
        for i in range(meta.num_row_groups)
        for j in range(meta.num_columns)
    )
    if expanded > max_expanded:
        raise DatasetError("file", f"parquet expands to more than {max_expanded} bytes")


def read_tabular_parquet(path: Path, parquet_file, limits: UploadLimits) -> ArrayDataset:
    import pyarrow as pa

    meta = parquet_file.metadata
    if meta.num_columns - 1 > limits.max_features:
        raise DatasetError(
            "file", f"{meta.num_columns - 1} feature columns, the limit is {limits.max_features}"
        )
    parquet_metadata_checks(
        meta, limits, max_expanded=min(limits.max_uncompressed_bytes, limits.max_tabular_bytes)
    )
    try:
        frame = parquet_file.read().to_pandas()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError("file", f"cannot read parquet: {e}") from e
    return from_frame(frame, limits)


def _check_feature_columns(frame, feature_cols: list[str]) -> None:
    import pandas as pd

    for col in feature_cols:
        series = frame[col]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            bad = series[pd.to_numeric(series, errors="coerce").isna() & series.notna()]
            example = f" (row {bad.index[0]}: {str(bad.iloc[0])[:40]!r})" if len(bad) else ""
            raise DatasetError("file", f"column {col!r} is not numeric{example}")
        if series.isna().any():
            raise DatasetError(
                "file", f"column {col!r} has missing values (row {int(series.isna().to_numpy().argmax())})"
            )


def from_frame(frame, limits: UploadLimits) -> ArrayDataset:
    """A pandas frame with a label column and numeric feature columns -> ArrayDataset."""
    import pandas as pd

    label = limits.label_column
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        raise DatasetError("file.label", f"no label column {label!r}; columns are {columns[:20]}")
    if columns.count(label) > 1:
        raise DatasetError("file.label", f"more than one column named {label!r}")
    frame.columns = columns
    feature_cols = [c for c in columns if c != label]
    if not feature_cols:
        raise DatasetError("file", "no feature columns besides the label")
    check_sizes(len(frame), len(feature_cols), limits)
    _check_feature_columns(frame, feature_cols)
    labels = frame[label]
    if labels.isna().any():
        raise DatasetError("file.label", f"missing label in row {int(labels.isna().to_numpy().argmax())}")

    x = frame[feature_cols].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise DatasetError("file", "features contain infinite values")
    if pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        raw = labels.to_numpy()
    else:
        raw = labels.astype(str).to_numpy().astype(np.str_)
    y, classes = encode_labels(raw, None, max_classes=limits.max_classes)
    return ArrayDataset(x.astype(np.float32), y, classes)
