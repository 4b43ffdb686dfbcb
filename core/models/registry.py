"""The one registry of model kinds, by name (as timm keeps its architectures): how a spec becomes the
kind's architecture dict, how many parameters that network will have, and how the dict becomes it.

    kind = get_kind("mlp")                                   # linear | mlp | cnn | timm
    arch = kind.describe(spec, input_shape, num_classes)     # JSON-able; goes into model.json
    kind.parameters(arch)                                    # before anything is allocated
    body = kind.build(arch)                                  # the network behind Standardize

Every kind takes the architecture's "head" (absent: softmax; coral / corn: C - 1 outputs, see
core/models/heads.py) into its description, its parameter count and its network.
`core.models.build` is the only caller; a new kind is one `register_kind` call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from core.errors import SpecError
from core.models.heads import attach_head, head_parameters, num_outputs
from core.models.nets import cnn_body, linear_body, mlp_body
from core.models.spec import ModelSpec
from core.models.timm_nets import build_timm, describe_timm, timm_parameters

__all__ = ["MODEL_KINDS", "ModelKind", "get_kind", "register_kind"]


@dataclass(frozen=True)
class ModelKind:
    """One model kind: spec -> architecture dict, dict -> parameter count, dict -> network."""

    describe: Callable[[ModelSpec, tuple[int, ...], int], dict[str, Any]]
    parameters: Callable[[dict[str, Any]], int]
    build: Callable[[dict[str, Any]], nn.Module]


MODEL_KINDS: dict[str, ModelKind] = {}


def register_kind(name: str, kind: ModelKind) -> None:
    MODEL_KINDS[name] = kind


def get_kind(name: str) -> ModelKind:
    try:
        return MODEL_KINDS[name]
    except KeyError:
        raise SpecError("model.kind", f"unknown model kind {name!r}") from None


# ---------------------------------------------------------------------------------------------------------
# the small dense kinds: linear, mlp, cnn


def _describe_dense(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    arch = {
        "hidden": list(spec.hidden),
        "dropout": spec.dropout,
        "channels": list(spec.channels),
        "input_shape": [int(d) for d in input_shape],
        "num_classes": int(num_classes),
    }
    if spec.head != "softmax":  # a softmax architecture stays as it was before heads existed
        arch["head"] = spec.head
    return arch


def _head(arch: dict[str, Any]) -> str:
    return str(arch.get("head", "softmax"))


def _dense_parameters(widths: list[int], arch: dict[str, Any]) -> int:
    """Parameters of the dense layers widths[0] -> ... -> widths[-1], the last one the output head."""
    hidden = sum(a * b + b for a, b in itertools.pairwise(widths[:-1]))
    return hidden + head_parameters(_head(arch), widths[-2], arch["num_classes"])


def _linear_parameters(arch: dict[str, Any]) -> int:
    return _dense_parameters([math.prod(arch["input_shape"]), arch["num_classes"]], arch)


def _mlp_parameters(arch: dict[str, Any]) -> int:
    return _dense_parameters([math.prod(arch["input_shape"]), *arch["hidden"], arch["num_classes"]], arch)


def _cnn_parameters(arch: dict[str, Any]) -> int:
    c, h, w = arch["input_shape"]
    conv = 0
    for out in arch["channels"]:
        conv += c * out * 9 + out
        if h >= 2 and w >= 2:
            h, w = h // 2, w // 2
        c = out
    return conv + _dense_parameters([c * h * w, *arch["hidden"], arch["num_classes"]], arch)


def _shape(arch: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(d) for d in arch["input_shape"])


def _outputs(arch: dict[str, Any]) -> int:
    return num_outputs(_head(arch), int(arch["num_classes"]))


def _with_head(arch: dict[str, Any], body: nn.Sequential) -> nn.Sequential:
    return attach_head(body, _head(arch), int(arch["num_classes"]))


register_kind(
    "linear",
    ModelKind(
        _describe_dense,
        _linear_parameters,
        lambda arch: _with_head(arch, linear_body(math.prod(_shape(arch)), _outputs(arch))),
    ),
)
register_kind(
    "mlp",
    ModelKind(
        _describe_dense,
        _mlp_parameters,
        lambda arch: _with_head(
            arch, mlp_body(math.prod(_shape(arch)), arch["hidden"], _outputs(arch), arch["dropout"])
        ),
    ),
)
register_kind(
    "cnn",
    ModelKind(
        _describe_dense,
        _cnn_parameters,
        lambda arch: _with_head(
            arch, cnn_body(_shape(arch), arch["channels"], arch["hidden"], _outputs(arch), arch["dropout"])
        ),
    ),
)
register_kind("timm", ModelKind(describe_timm, timm_parameters, build_timm))
