"""Build a classifier from a `ModelSpec`, and rebuild a saved one from its `model.json` + state dict.

    model = build_model({"kind": "auto"}, input_shape=(1, 8, 8), num_classes=10, mean=mean, std=std)
    arch = architecture_json(spec, (1, 8, 8), 10)     # goes into model.json["architecture"]
    model = rebuild_model(model_json, state_dict)     # exact same module, weights loaded strictly

Without mean/std the Standardize buffers start as 0 / 1 (identity); the engine passes training-split stats.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import SpecError
from core.models.nets import Classifier, Standardize, cnn_body, linear_body, mlp_body, stats_shape
from core.models.spec import ModelSpec, parse_model_spec, resolve_kind

__all__ = [
    "MAX_PARAMETERS",
    "MODEL_FORMAT_VERSION",
    "architecture_json",
    "build_model",
    "count_parameters",
    "rebuild_model",
]

MAX_PARAMETERS = 50_000_000
MODEL_FORMAT_VERSION = 1


def architecture_json(
    spec: ModelSpec | dict | None, input_shape: tuple[int, ...], num_classes: int
) -> dict[str, Any]:
    """The resolved architecture (enough to rebuild the module): kind, sizes, input shape, classes."""
    spec = parse_model_spec(spec)
    return {
        "kind": resolve_kind(spec, tuple(input_shape)),
        "hidden": list(spec.hidden),
        "dropout": spec.dropout,
        "channels": list(spec.channels),
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(num_classes),
    }


def build_model(
    spec: ModelSpec | dict | None,
    input_shape: tuple[int, ...],
    num_classes: int,
    mean: np.ndarray | torch.Tensor | None = None,
    std: np.ndarray | torch.Tensor | None = None,
) -> nn.Module:
    """A fresh `Classifier` (random init from torch's global RNG) for inputs of `input_shape`."""
    return _build(architecture_json(spec, input_shape, num_classes), mean, std)


def rebuild_model(model_json: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """The model described by `model_json` (its "architecture", or that dict itself), weights loaded."""
    version = model_json.get("format_version", MODEL_FORMAT_VERSION)
    if version != MODEL_FORMAT_VERSION:
        raise ValueError(f"unsupported model format version {version}")
    arch = model_json.get("architecture", model_json)
    model = _build(arch, None, None)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(arch: dict[str, Any], mean, std) -> nn.Module:
    input_shape = tuple(int(d) for d in arch["input_shape"])
    num_classes = int(arch["num_classes"])
    kind = arch["kind"]
    in_features = math.prod(input_shape)
    _check_size(arch, in_features, num_classes)

    shape = stats_shape(input_shape)
    mean_t = (
        torch.zeros(shape)
        if mean is None
        else torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(shape)
    )
    std_t = (
        torch.ones(shape)
        if std is None
        else torch.as_tensor(np.asarray(std), dtype=torch.float32).reshape(shape)
    )

    if kind == "linear":
        body = linear_body(in_features, num_classes)
    elif kind == "mlp":
        body = mlp_body(in_features, arch["hidden"], num_classes, arch["dropout"])
    elif kind == "cnn":
        body = cnn_body(input_shape, arch["channels"], arch["hidden"], num_classes, arch["dropout"])
    else:
        raise SpecError("model.kind", f"unknown model kind {kind!r}")
    return Classifier(Standardize(mean_t, std_t), body)


def _check_size(arch: dict[str, Any], in_features: int, num_classes: int) -> None:
    """Estimate the parameter count before allocating anything; SpecError('model') when too large."""
    widths = [in_features] + ([] if arch["kind"] == "linear" else list(arch["hidden"])) + [num_classes]
    if arch["kind"] == "cnn":
        c, h, w = arch["input_shape"]
        conv = 0
        for out in arch["channels"]:
            conv += c * out * 9 + out
            if h >= 2 and w >= 2:
                h, w = h // 2, w // 2
            c = out
        widths[0] = c * h * w
    else:
        conv = 0
    total = conv + sum(a * b + b for a, b in itertools.pairwise(widths))
    if total > MAX_PARAMETERS:
        raise SpecError(
            "model", f"the model would have {total:,} parameters, the limit is {MAX_PARAMETERS:,}"
        )
