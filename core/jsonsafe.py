"""One JSON-safe conversion for everything simtrain stores or answers: metrics, events, reports, error details.

    from core.jsonsafe import json_safe
    json_safe({"acc": np.float32(0.9), "loss": float("nan"), "x": torch.tensor([1, 2])})
    # -> {"acc": 0.9, "loss": None, "x": [1, 2]}

numpy / torch scalars and arrays become Python numbers and lists, non-finite floats become `None` (or
`str(value)` with `nonfinite="str"`, which error details use so that a rejected `NaN` is shown), bytes are
shown as at most 200 decoded characters, and anything else unknown becomes `str(value)`. No torch import:
tensors are recognised by their `tolist` / `item` methods.
"""

from __future__ import annotations

import math
from typing import Any, Literal

__all__ = ["json_safe"]


def json_safe(value: Any, *, nonfinite: Literal["none", "str"] = "none") -> Any:
    """A copy of `value` made of dict / list / str / int / float / bool / None only."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return str(value) if nonfinite == "str" else None
    if isinstance(value, dict):
        return {str(k): json_safe(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:200]).decode("utf-8", "replace")
    return _array_like(value, nonfinite)


def _array_like(value: Any, nonfinite: Literal["none", "str"]) -> Any:
    """numpy / torch scalars and arrays (detached, on the host), else the value's text."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return json_safe(value.item(), nonfinite=nonfinite)
    if hasattr(value, "tolist"):
        return json_safe(value.tolist(), nonfinite=nonfinite)
    if hasattr(value, "item"):
        try:
            return json_safe(value.item(), nonfinite=nonfinite)
        except (TypeError, ValueError):
            pass
    return str(value)
