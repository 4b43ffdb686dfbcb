"""Job specs and metric records turned into what MLflow accepts: dotted keys, bounded values.

    flat_params({"loss": {"kind": "simloss", "reduction_factor": 0.3}})
    # -> {"loss.kind": "simloss", "loss.reduction_factor": "0.3"}
    scalar_metrics({"train": {"loss": 0.4}, "val": {"loss": 0.5, "per_class_recall": [...]}, "lr": 0.01})
    # -> {"train.loss": 0.4, "val.loss": 0.5, "lr": 0.01}

Dicts are walked with dotted keys; lists are kept whole as JSON (a similarity matrix is one parameter).
Keys keep MLflow's allowed characters (letters, digits, `_ - . : /` and spaces; anything else becomes
`_`) and its 250-character limit, parameter values its 6000-character limit (truncated, ending `...`),
tag values its 8000. Metrics are the finite numbers among the leaves (booleans and lists are left out).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PARAM_LENGTH",
    "MAX_TAG_LENGTH",
    "flat_params",
    "mlflow_key",
    "scalar_metrics",
    "tag_value",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
_BAD_KEY_CHARS = re.compile(r"[^\w.\- :]")


def mlflow_key(key: str) -> str:
    """`key` with MLflow's allowed characters only, no leading dot or space, at most 250 characters."""
    cleaned = _BAD_KEY_CHARS.sub("_", str(key)).strip()
    cleaned = re.sub(r"^\.+", "_", cleaned)
    return cleaned[:MAX_KEY_LENGTH] or "_"


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and (value or not prefix):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def flat_params(spec: Mapping[str, Any], *, limit: int = 1000) -> dict[str, str]:
    """The leaves of `spec` as MLflow parameters (dotted keys, values as text); at most `limit` of them."""
    out: dict[str, str] = {}
    for key, value in _leaves(spec):
        if len(out) >= limit:
            break
        out.setdefault(mlflow_key(key), _text(value, MAX_PARAM_LENGTH))
    return out


def scalar_metrics(record: Mapping[str, Any], *, prefix: str = "") -> dict[str, float]:
    """The finite numeric leaves of `record` under dotted keys (`prefix` first, when given)."""
    out: dict[str, float] = {}
    for key, value in _leaves(record):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        out[mlflow_key(f"{prefix}{key}")] = float(value)
    return out


def tag_value(value: Any) -> str:
    """A tag's value as text within MLflow's limit."""
    return _text(value, MAX_TAG_LENGTH)
