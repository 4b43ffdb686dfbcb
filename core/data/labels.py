"""Raw labels of an upload (ints, whole floats, bools, strings or bytes) -> int64 indices and class names.

    y, classes = encode_labels(np.array(["dog", "cat", "dog"]), None, max_classes=1000)
    # y = [1, 0, 1], classes = ["cat", "dog"]

With explicit `classes`: integer labels index into them, string labels must be among them. Without:
the sorted distinct labels (numeric order for numbers) become the classes. Problems are DatasetErrors
naming `file.label` (or `classes`).
"""

from __future__ import annotations

import numpy as np

from core.errors import DatasetError

__all__ = ["encode_labels", "read_class_names"]


def _normalise(labels: np.ndarray, field: str) -> tuple[np.ndarray, str]:
    kind = labels.dtype.kind
    if kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise DatasetError(field, "float labels must be whole numbers")
        return labels.astype(np.int64), "i"
    if kind == "b":
        return labels.astype(np.int64), "i"
    if kind not in "iuUS":
        raise DatasetError(field, f"labels must be integers or strings, got dtype {labels.dtype}")
    if kind == "S":
        try:
            return np.char.decode(labels, "utf-8"), "U"
        except UnicodeDecodeError as e:
            raise DatasetError(field, "labels are not valid UTF-8") from e
    return labels, kind


def encode_labels(
    labels: np.ndarray, classes: list[str] | None, *, max_classes: int, field: str = "file.label"
) -> tuple[np.ndarray, list[str]]:
    """(int64 indices, class names) of `labels`; see the module docstring."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DatasetError(field, f"labels must be 1-D, got shape {labels.shape}")
    labels, kind = _normalise(labels, field)
    if classes is not None:
        if len(classes) > max_classes:
            raise DatasetError("classes", f"{len(classes)} classes, the limit is {max_classes}")
        if kind in "iu":
            if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
                raise DatasetError(field, f"integer labels must lie in [0, {len(classes)})")
            return labels.astype(np.int64), classes
        position = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(labels.tolist()) - set(position))
        if unknown:
            raise DatasetError(field, f"labels not in classes: {unknown[:10]}")
        return np.array([position[v] for v in labels.tolist()], dtype=np.int64), classes

    uniques, inverse = np.unique(labels, return_inverse=True)
    if len(uniques) > max_classes:
        raise DatasetError("classes", f"{len(uniques)} classes, the limit is {max_classes}")
    names = [str(v) for v in uniques.tolist()]
    if any(not n.strip() for n in names):
        raise DatasetError(field, "labels must be non-empty")
    return inverse.reshape(-1).astype(np.int64), names


def read_class_names(raw: np.ndarray, field: str = "file.classes") -> list[str]:
    """A 1-D array of strings (str or UTF-8 bytes) -> class names."""
    if raw.ndim != 1 or raw.dtype.kind not in "US":
        raise DatasetError(field, "classes must be a 1-D array of strings")
    try:
        return [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in raw.tolist()]
    except UnicodeDecodeError as e:
        raise DatasetError(field, "class names are not valid UTF-8") from e
