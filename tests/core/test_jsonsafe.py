"""core.jsonsafe.json_safe: the one JSON-safe conversion."""

import json
import math

import numpy as np
import torch

from core.jsonsafe import json_safe


def test_numpy_torch_and_nonfinite_become_plain_json():
    value = {
        1: np.float32(0.5),
        "i": np.int64(3),
        "b": np.bool_(True),
        "arr": np.array([1.0, np.nan]),
        "t": torch.tensor([[1, 2]]),
        "ts": torch.tensor(2.5),
        "tup": (float("inf"), -0.0),
        "raw": b"\xffabc",
    }
    out = json_safe(value)
    assert out == {"1": 0.5, "i": 3, "b": True, "arr": [1.0, None], "t": [[1, 2]], "ts": 2.5,
                   "tup": [None, -0.0], "raw": "\ufffdabc"}
    assert type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)


def test_nonfinite_as_text_for_error_details():
    assert json_safe([math.nan, math.inf], nonfinite="str") == ["nan", "inf"]


def test_unknown_objects_become_text_and_bytes_are_bounded():
    assert json_safe(ValueError("bad")) == "bad"
    assert len(json_safe(b"x" * 10_000)) == 200
