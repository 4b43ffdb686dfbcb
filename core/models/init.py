"""Warm starts: load compatible weights into a freshly built model, and the optimizer's parameter groups.

    report = load_init_weights(model, state_dict, source_classes=old_classes, target_classes=classes)
    report.loaded, report.skipped, report.head_reset          # what came from the source, what did not
    groups = param_groups(model, freeze="none", backbone_lr_factor=0.1, lr=1e-3)
    optimizer = torch.optim.AdamW(groups, lr=1e-3)              # head at lr, backbone at lr * 0.1

The state dict is tensors only: a mapping of names to tensors, or the bytes of a safetensors file
(never a pickle). Every tensor of the model whose name and shape match is loaded, except:

- the classifier head when the class lists differ (other classes, or the same ones in another order):
  it is re-initialised (timm's `reset_classifier()`; for linear / mlp / cnn the last Linear's
  `reset_parameters()`);
- the `standardize.*` buffers: the model keeps the statistics of the data it is built for.

The head is timm's `get_classifier()` for a timm network, else the body's last `nn.Linear`; the
backbone is every other parameter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from core.errors import SpecError

__all__ = ["InitReport", "InitWeights", "head_parameter_names", "load_init_weights", "param_groups"]

_KEPT_PREFIX = "standardize."


@dataclass(frozen=True)
class InitWeights:
    """Resolved warm-start weights, handed from the worker (which resolves `model.init`) to the engine.

    `tensors`: the source model's state dict (from safetensors); `classes`: the classes its head was
    trained for (None for uploaded weights that do not say; the head is then re-initialised);
    `source`: where they came from, for events ("job:<id>", "weights:<id>").
    """

    tensors: Mapping[str, torch.Tensor]
    classes: Sequence[str] | None
    source: str


@dataclass
class InitReport:
    """What a warm start did: tensors loaded, tensors kept (name -> reason), source tensors unused."""

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    head_reset: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": len(self.loaded),
            "skipped": dict(self.skipped),
            "unused": list(self.unused),
            "head_reset": self.head_reset,
        }


def load_init_weights(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor] | bytes,
    *,
    source_classes: Sequence[str],
    target_classes: Sequence[str],
) -> InitReport:
    """Load the compatible tensors of `state_dict` into `model` in place (see the module docstring).

    SpecError("model.init") when the weights are not tensors, or when none of the backbone (for a
    linear model: nothing at all) would load.
    """
    source = _tensors(state_dict)
    same_classes = [str(c) for c in source_classes] == [str(c) for c in target_classes]
    head = set(head_parameter_names(model))
    report = InitReport(head_reset=not same_classes)
    take: dict[str, torch.Tensor] = {}
    own = model.state_dict()
    for name, tensor in own.items():
        in_head = _in_head(name, head)
        reason = _skip_reason(name, tensor, source.get(name), in_head=in_head, same_classes=same_classes)
        if reason is None:
            take[name] = source[name]
        else:
            report.skipped[name] = reason
    backbone = [n for n in own if not _in_head(n, head) and not n.startswith(_KEPT_PREFIX)]
    if not take or (backbone and not any(n in take for n in backbone)):
        raise SpecError("model.init", "none of the warm-start weights fit this model's backbone")
    model.load_state_dict(take, strict=False)
    if not same_classes:
        _reset_head(model, len(target_classes))
    report.loaded = sorted(take)
    report.unused = sorted(set(source) - set(own))
    return report


def param_groups(
    model: nn.Module,
    *,
    freeze: Literal["none", "backbone"] = "none",
    backbone_lr_factor: float = 1.0,
    lr: float,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: the head at `lr` first, then the backbone at `lr * backbone_lr_factor`;
    with freeze="backbone" only the head (the backbone's parameters get requires_grad False)."""
    if freeze not in ("none", "backbone"):
        raise SpecError("model.freeze", f"must be 'none' or 'backbone', got {freeze!r}")
    if not 0.0 < backbone_lr_factor <= 1.0:
        raise SpecError("model.backbone_lr_factor", f"must be in (0, 1], got {backbone_lr_factor}")
    if not lr > 0:
        raise SpecError("training.learning_rate", f"must be positive, got {lr}")
    head_names = set(head_parameter_names(model))
    head, backbone = [], []
    for name, param in model.named_parameters():
        (head if _in_head(name, head_names) else backbone).append(param)
    groups = [{"name": "head", "params": head, "lr": lr}]
    if freeze == "backbone":
        for param in backbone:
            param.requires_grad_(False)
    elif backbone:
        groups.append({"name": "backbone", "params": backbone, "lr": lr * backbone_lr_factor})
    return groups


def head_parameter_names(model: nn.Module) -> list[str]:
    """The module prefixes of the classifier head in `model` (e.g. "body.fc"), found by identity."""
    heads = _head_modules(model)
    names = [name for name, module in model.named_modules() if any(module is h for h in heads)]
    if not names:
        raise SpecError("model.init", f"no classifier head found in {type(model).__name__}")
    return names


# ---------------------------------------------------------------------------------------------------------


def _tensors(state_dict: Mapping[str, torch.Tensor] | bytes) -> dict[str, torch.Tensor]:
    if isinstance(state_dict, (bytes, bytearray, memoryview)):
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(bytes(state_dict))
        except (SafetensorError, ValueError) as e:
            raise SpecError("model.init", f"the weights are not a safetensors file: {e}") from None
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise SpecError("model.init", "the weights must map names to tensors (a safetensors state dict)")
    return dict(state_dict)


def _skip_reason(
    name: str, own: torch.Tensor, src: torch.Tensor | None, *, in_head: bool, same_classes: bool
) -> str | None:
    """Why `name` is not loaded from the source, or None when it is."""
    if name.startswith(_KEPT_PREFIX):
        return "kept: the standardisation of this model's data"
    if in_head and not same_classes:
        return "head re-initialised: the classes differ"
    if src is None:
        return "not in the warm-start weights"
    if tuple(src.shape) != tuple(own.shape):
        return f"shape {list(src.shape)} in the warm-start weights, {list(own.shape)} here"
    return None


def _in_head(name: str, head_prefixes: set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in head_prefixes)


def _body(model: nn.Module) -> nn.Module:
    return getattr(model, "body", model)


def _head_modules(model: nn.Module) -> list[nn.Module]:
    body = _body(model)
    if hasattr(body, "get_classifier") and hasattr(body, "reset_classifier"):  # a timm network
        head = body.get_classifier()
        return [h for h in (head if isinstance(head, (tuple, list)) else [head]) if isinstance(h, nn.Module)]
    linears = [m for m in body.modules() if isinstance(m, nn.Linear)]
    return linears[-1:]


def _reset_head(model: nn.Module, num_classes: int) -> None:
    body = _body(model)
    if hasattr(body, "reset_classifier"):
        body.reset_classifier(num_classes)
        return
    for head in _head_modules(model):
        head.reset_parameters()
