"""timm networks for the "timm" model kind: created by name (never pretrained), the small-image stem of
the ResNet family, and a meta-device probe that checks an architecture against the input size and counts
its parameters before anything is allocated.

    arch = describe_timm(spec, (3, 32, 32), 10)    # the architecture dict that goes into model.json
    body = build_timm(arch)                         # the network, random init from torch's global RNG

The probe creates the network on the meta device (no memory, no RNG draws), applies the stem and runs
one forward pass at the dataset's input size: an architecture that cannot take that size (a ViT whose
patch size does not divide it, a stage that shrinks the map below its kernel), an option it does not take,
or a network that is no classifier is a `SpecError` naming the field, before training starts.

Small-image stem (timm's `ResNet`: resnet*, resnext*, seresnet*, res2net*, resnest*, skresnet*, ...):
the stem conv becomes 3x3 stride 1 (a deep stem keeps its three 3x3 convs, the first at stride 1) and
the stem max-pool (or the conv replacing it) an identity, so 32 x 32 inputs reach the last stage at 4 x 4
instead of 1 x 1. "auto" turns it on for such networks when the smaller image side is under 64 px.

Ordinal heads (`model.head` coral / corn, core/models/heads.py): the network is created with C - 1
outputs; for coral its linear classifier is then replaced by a `CoralHead` (a classifier that is not one
`nn.Linear` is a SpecError on `model.head`). The architecture dict says "head" only for those.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from core.errors import SpecError
from core.models.heads import attach_timm_head, num_outputs
from core.models.spec import ModelSpec

__all__ = [
    "SMALL_IMAGE_PX",
    "apply_small_image_stem",
    "build_timm",
    "describe_timm",
    "supports_small_image_stem",
    "timm_parameters",
]

SMALL_IMAGE_PX = 64  # "auto" uses the small-image stem below this image side


def describe_timm(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The architecture dict of a timm spec for (C, H, W) inputs; SpecError when it cannot be built."""
    import timm

    c, h, w = (int(d) for d in input_shape)
    arch: dict[str, Any] = {
        "kind": "timm",
        "architecture": spec.architecture,
        "options": spec.options.create_kwargs() if spec.options is not None else {},
        "in_chans": c,
        "num_classes": int(num_classes),
        "img_size": [h, w] if _fixed_input_size(spec.architecture) else None,
        "small_image_stem": spec.small_image_stem,
        "input_shape": [c, h, w],
        "preprocessing": {  # the Standardize front of core.models.nets, inside the model
            "kind": "standardize",
            "formula": "(x - mean) / std",
            "per": "channel",
            "stats_shape": [c, 1, 1],
            "buffers": ["standardize.mean", "standardize.std"],
            "input_dtype": "float32 (integer inputs are cast to float32 first)",
        },
        "timm_version": timm.__version__,
    }
    if spec.head != "softmax":  # a softmax architecture stays as it was before heads existed
        arch["head"] = spec.head
    arch["small_image_stem"], _ = _probe(_key(arch))
    return arch


def build_timm(arch: dict[str, Any]) -> nn.Module:
    """The timm network `arch` describes (random init), with the small-image stem when it says so."""
    net = _create(arch["architecture"], _create_kwargs(arch), options=arch["options"])
    attach_timm_head(net, _head(arch), arch["num_classes"])
    if arch["small_image_stem"]:
        apply_small_image_stem(net)
    return net


def timm_parameters(arch: dict[str, Any]) -> int:
    """The parameter count of the network `arch` describes, from the (cached) meta-device probe."""
    return _probe(_key(arch))[1]


def supports_small_image_stem(net: nn.Module) -> bool:
    from timm.models.resnet import ResNet

    return isinstance(net, ResNet)


def apply_small_image_stem(net: nn.Module) -> None:
    """In place: a 3x3 stride-1 stem and no stem pooling on a timm `ResNet` (timm's `conv1` / `maxpool`)."""
    if isinstance(net.conv1, nn.Sequential):  # deep stem: three 3x3 convs, only the first strided
        net.conv1[0].stride = (1, 1)
    else:
        old = net.conv1
        net.conv1 = nn.Conv2d(
            old.in_channels, old.out_channels, 3, stride=1, padding=1, bias=False,
            device=old.weight.device, dtype=old.weight.dtype,
        )  # fmt: skip
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as timm's ResNet
    net.maxpool = nn.Identity()
    for info in getattr(net, "feature_info", []):  # the stem no longer reduces by 4 (2 before the pool)
        info["reduction"] = max(1, info["reduction"] // (2 if info.get("module") == "act1" else 4))


# ---------------------------------------------------------------------------------------------------------
# creation and the probe


def _head(arch: dict[str, Any]) -> str:
    return str(arch.get("head", "softmax"))


def _create_kwargs(arch: dict[str, Any]) -> dict[str, Any]:
    outputs = num_outputs(_head(arch), arch["num_classes"])
    kwargs = {**arch["options"], "in_chans": arch["in_chans"], "num_classes": outputs}
    if arch.get("img_size") is not None:
        kwargs["img_size"] = tuple(arch["img_size"])
    return kwargs


def _fixed_input_size(name: str) -> bool:
    """Whether the architecture is built for one input size (ViT-like): then it is created for the data's."""
    import timm

    cfg = timm.get_pretrained_cfg(name)
    return bool(cfg is not None and cfg.fixed_input_size)


def _key(arch: dict[str, Any]) -> tuple:
    """The hashable description the probe is cached by."""
    return (
        arch["architecture"],
        tuple(sorted(arch["options"].items())),
        arch["in_chans"],
        arch["num_classes"],
        tuple(arch["img_size"]) if arch.get("img_size") is not None else None,
        tuple(arch["input_shape"]),
        _head(arch),
        arch["small_image_stem"],  # last: _probe also stores the result under the resolved stem
    )


_PROBED: dict[tuple, tuple[bool, int]] = {}  # probe results by key, also under the key with "auto" resolved
_PROBED_MAX = 256


def _probe(key: tuple) -> tuple[bool, int]:
    """(small-image stem used, parameter count) of the network `key` describes, cached."""
    if key not in _PROBED:
        result = _run_probe(key)
        if len(_PROBED) >= _PROBED_MAX:
            _PROBED.clear()
        _PROBED[key] = _PROBED[(*key[:-1], result[0])] = result
    return _PROBED[key]


def _run_probe(key: tuple) -> tuple[bool, int]:
    """Create the network on the meta device, resolve and apply the stem, run it once; SpecError if not."""
    name, options, in_chans, num_classes, img_size, input_shape, head, stem = key
    arch = {"architecture": name, "options": dict(options), "in_chans": in_chans,
            "num_classes": num_classes, "img_size": img_size, "head": head}  # fmt: skip
    with torch.device("meta"):
        net = _create(name, _create_kwargs(arch), options=arch["options"], meta=True)
        attach_timm_head(net, head, num_classes)
        supported = supports_small_image_stem(net)
        if stem is True and not supported:
            raise SpecError(
                "model.small_image_stem",
                f"the small-image stem is implemented for timm's ResNet family (resnet*, resnext*, "
                f"seresnet*, ...); {name} is a {type(net).__name__}: use false or \"auto\"",
            )
        if stem == "auto":
            stem = supported and min(input_shape[1:]) < SMALL_IMAGE_PX
        if stem:
            apply_small_image_stem(net)
        _check_forward(net, name, input_shape, num_outputs(head, num_classes))
    return bool(stem), sum(p.numel() for p in net.parameters())


def _check_forward(net: nn.Module, name: str, input_shape: tuple[int, ...], outputs: int) -> None:
    """One meta forward pass: the network takes `input_shape` and returns (N, outputs) logits."""
    shape = "x".join(str(d) for d in input_shape)
    try:
        with torch.no_grad():
            out = net.eval()(torch.empty(2, *input_shape))
    except Exception as e:  # noqa: BLE001 - any failure of the network on this input size
        if "meta" in str(e).lower():  # an op without a meta kernel: inconclusive, not the input's fault
            return
        raise SpecError("model.architecture", f"{name} cannot take {shape} inputs: {_short(e)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, outputs):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SpecError("model.architecture", f"{name} is not a classifier: it returns {got}, not logits")


def _create(name: str, kwargs: dict[str, Any], *, options: dict[str, Any], meta: bool = False) -> nn.Module:
    """timm.create_model(name, pretrained=False, **kwargs); a failure is a SpecError naming its cause."""
    import timm

    try:
        return timm.create_model(name, pretrained=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - timm raises TypeError, AssertionError, ValueError, ...
        raise _creation_error(name, kwargs, options, e, meta) from None


def _creation_error(name: str, kwargs: dict, options: dict, exc: Exception, meta: bool) -> SpecError:
    import timm

    named = [opt for opt in options if isinstance(exc, TypeError) and f"'{opt}'" in str(exc)]
    if named:
        return SpecError(f"model.options.{named[0]}", f"{name} does not take {named[0]}")
    field = "model.architecture"
    if options and meta:  # does it build without the options? then they are the cause
        with contextlib.suppress(Exception):
            timm_kwargs = {k: v for k, v in kwargs.items() if k not in options}
            timm.create_model(name, pretrained=False, **timm_kwargs)
            field = "model.options" + (f".{next(iter(options))}" if len(options) == 1 else "")
    return SpecError(field, f"{name} cannot be created with {kwargs}: {_short(exc)}")


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
