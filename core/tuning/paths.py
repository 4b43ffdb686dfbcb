"""Dotted paths into a job document (`similarity.reduction_factor`, `loss.components.1.weight`): read one,
or copy the document with one value replaced. A path names dict keys and list indices; it exists only
when every step is there (a key present, an index in range), so a search space can only set fields the
job spec already has.

    get_path({"training": {"learning_rate": 0.001}}, "training.learning_rate")       # 0.001
    with_value(doc, "loss.components.1.weight", 0.5)                                 # a new document
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["get_path", "with_value", "with_values"]


def _step(node: Any, part: str, path: str) -> tuple[Any, Any]:
    """The child of `node` named `part` and the key or index it sits under; LookupError naming `path`."""
    if isinstance(node, dict):
        if part in node:
            return node[part], part
    elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)], int(part)
    raise LookupError(f"{path!r} is not a field of the job spec ({part!r} is not there)")


def get_path(doc: Any, path: str) -> Any:
    """The value at `path` in `doc`; LookupError when some step is missing."""
    node = doc
    for part in path.split("."):
        node, _ = _step(node, part, path)
    return node


def with_value(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `doc` with `path` set to `value`; LookupError when `path` does not exist."""
    return with_values(doc, {path: value})


def with_values(doc: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `doc` with every `path: value` of `values` set; LookupError for a missing path."""
    out = copy.deepcopy(doc)
    for path, value in values.items():
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node, _ = _step(node, part, path)
        _, where = _step(node, last, path)
        node[where] = copy.deepcopy(value)
    return out
