"""Build a classifier from a `ModelSpec`, and rebuild a saved one from its `model.json` + state dict.

    model = build_model({"kind": "auto"}, input_shape=(1, 8, 8), num_classes=10, mean=mean, std=std)
    model = build_model({"kind": "timm", "architecture": "resnet18"}, (3, 32, 32), 10, mean=mean, std=std)
    arch = architecture_json(spec, (1, 8, 8), 10)     # goes into model.json["architecture"]
    model = rebuild_model(model_json, state_dict)     # exact same module, weights loaded strictly

Every model is `Classifier(Standardize(mean, std), body)`, the body made by the kind's builder in
`core.models.registry`. Without mean/std the Standardize buffers start as 0 / 1 (identity); the engine
passes training-split stats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import SpecError
from core.models.nets import Classifier, Standardize, stats_shape
from core.models.registry import get_kind
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
    spec: ModelSpec | dict | None,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The resolved architecture (enough to rebuild the module): kind, its sizes, input shape, classes.

    linear / mlp / cnn: hidden, dropout, channels, input_shape, num_classes (as in format version 1);
    timm: architecture, options, in_chans, num_classes, img_size, small_image_stem (resolved), input_shape,
    preprocessing, timm_version (see core/models/timm_nets.py). `classes`, when given, is recorded too.
    """
    spec = parse_model_spec(spec)
    input_shape = tuple(int(d) for d in input_shape)
    kind = resolve_kind(spec, input_shape)
    arch = {"kind": kind, **get_kind(kind).describe(spec, input_shape, int(num_classes))}
    if classes is not None:
        if len(classes) != num_classes:
            raise ValueError(f"{len(classes)} class names for {num_classes} classes")
        arch["classes"] = [str(c) for c in classes]
    return arch


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
    kind = get_kind(arch["kind"])
    total = kind.parameters(arch)
    if total > MAX_PARAMETERS:  # checked before anything is allocated
        raise SpecError(
            "model", f"the model would have {total:,} parameters, the limit is {MAX_PARAMETERS:,}"
        )
    shape = stats_shape(tuple(int(d) for d in arch["input_shape"]))
    return Classifier(Standardize(_stats(mean, shape, 0.0), _stats(std, shape, 1.0)), kind.build(arch))


def _stats(value: np.ndarray | torch.Tensor | None, shape: tuple[int, ...], fill: float) -> torch.Tensor:
    """A Standardize buffer of `shape`: `value` reshaped, or `fill` everywhere when it is None."""
    if value is None:
        return torch.full(shape, fill)
    return torch.as_tensor(np.asarray(value), dtype=torch.float32).reshape(shape)
