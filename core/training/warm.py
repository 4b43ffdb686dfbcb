"""Warm starts in the engine: load `TrainPlan.init` into the fresh model, keep a frozen backbone's
BatchNorm layers in eval mode.

    info = apply_init(model, plan.init, classes)   # None without init; else what hooks.on_start reports
    model.train(); freeze_backbone_norms(model)     # each epoch, when model.freeze == "backbone"

The weights come resolved from the worker (`core.models.init.InitWeights`: tensors, the classes their
head was trained for, a source such as "job:<id>"); `core.models.init.load_init_weights` loads what
fits and re-initialises the head when the classes differ (or are unknown). A frozen backbone gets no
gradient (`param_groups`), and its BatchNorm layers must not move their running statistics either,
so they stay in eval mode while the head trains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from core.models.init import InitWeights, head_parameter_names, load_init_weights

__all__ = ["apply_init", "freeze_backbone_norms"]


def apply_init(model: nn.Module, init: InitWeights | None, classes: Sequence[str]) -> dict[str, Any] | None:
    """Load `init` into `model` in place; a JSON-able summary (source, loaded, skipped, unused, head_reset)."""
    if init is None:
        return None
    report = load_init_weights(
        model, init.tensors, source_classes=list(init.classes or []), target_classes=list(classes)
    )
    return {"source": init.source, **report.to_dict()}


def freeze_backbone_norms(model: nn.Module) -> None:
    """Put every BatchNorm layer outside the classifier head in eval mode (after `model.train()`)."""
    heads = tuple(head_parameter_names(model))
    for name, module in model.named_modules():
        in_head = any(name == h or name.startswith(h + ".") for h in heads)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not in_head:
            module.eval()
