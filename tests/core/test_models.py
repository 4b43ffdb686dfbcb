"""Tests of core.models: the spec, standardisation, the three architectures, build / rebuild.

/tmp/venv/bin/python -m pytest tests/core/test_models.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import SpecError
from core.models import (
    MAX_PARAMETERS,
    ModelSpec,
    architecture_json,
    build_model,
    parse_model_spec,
    rebuild_model,
    resolve_kind,
    standardization_stats,
)


def test_spec_defaults_and_bounds():
    spec = parse_model_spec(None)
    assert spec == ModelSpec(kind="auto", hidden=[128], dropout=0.0, channels=[16, 32])
    for bad, field in [
        ({"kind": "transformer"}, "model.kind"),
        ({"hidden": []}, "model.hidden"),
        ({"hidden": [1, 2, 3, 4, 5]}, "model.hidden"),
        ({"hidden": [0]}, "model.hidden.0"),
        ({"hidden": [5000]}, "model.hidden.0"),
        ({"dropout": 0.9}, "model.dropout"),
        ({"channels": [1024]}, "model.channels.0"),
        ({"extra": 1}, "model.extra"),
    ]:
        with pytest.raises(SpecError) as info:
            parse_model_spec(bad)
        assert info.value.field == field, (bad, info.value.field)


def test_resolve_kind():
    auto = ModelSpec()
    assert resolve_kind(auto, (1, 28, 28)) == "cnn"
    assert resolve_kind(auto, (3, 4, 4)) == "mlp"
    assert resolve_kind(auto, (64,)) == "mlp"
    assert resolve_kind(ModelSpec(kind="linear"), (1, 28, 28)) == "linear"
    with pytest.raises(SpecError) as info:
        resolve_kind(ModelSpec(kind="cnn"), (64,))
    assert info.value.field == "model.kind"


def test_standardization_stats_per_feature_and_per_channel():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 4)).astype(np.float32)
    x[:, 3] = 7.0  # constant feature: std -> 1
    mean, std = standardization_stats(x)
    assert mean.shape == (4,) and np.allclose(mean, x.mean(0), atol=1e-5)
    assert np.allclose(std[:3], x[:, :3].std(0), rtol=1e-4) and std[3] == 1.0
    img = np.random.default_rng(1).random((20, 3, 5, 5)).astype(np.float32)
    mean, std = standardization_stats(img)
    assert mean.shape == (3, 1, 1)
    assert np.allclose(mean.ravel(), img.mean(axis=(0, 2, 3)), atol=1e-6)


@pytest.mark.parametrize(
    "spec, shape",
    [
        ({"kind": "linear"}, (10,)),
        ({"kind": "mlp", "hidden": [16, 8], "dropout": 0.2}, (10,)),
        ({"kind": "auto"}, (1, 8, 8)),
        ({"kind": "cnn", "channels": [4, 4, 4]}, (3, 2, 3)),
        ({"kind": "mlp"}, (2, 3, 4)),
    ],
)
def test_build_forward_and_rebuild(spec, shape):
    torch.manual_seed(0)
    mean, std = np.full(3 if len(shape) == 3 else shape, 0.5), np.full(3 if len(shape) == 3 else shape, 2.0)
    if len(shape) == 3:
        mean, std = np.full((shape[0], 1, 1), 0.5), np.full((shape[0], 1, 1), 2.0)
    model = build_model(spec, shape, 5, mean=mean, std=std).eval()
    x = torch.randn(7, *shape)
    out = model(x)
    assert out.shape == (7, 5)
    arch = architecture_json(spec, shape, 5)
    again = rebuild_model({"format_version": 1, "architecture": arch}, model.state_dict())
    assert torch.equal(again(x), out)
    assert torch.equal(again.standardize.mean, model.standardize.mean)


def test_standardize_is_applied_inside_the_model():
    model = build_model({"kind": "linear"}, (2,), 2, mean=np.array([1.0, 2.0]), std=np.array([2.0, 4.0]))
    assert torch.allclose(model.standardize(torch.tensor([[3.0, 6.0]])), torch.tensor([[1.0, 1.0]]))
    assert "standardize.mean" in model.state_dict() and "standardize.std" in model.state_dict()


def test_rebuild_rejects_wrong_weights_and_versions():
    model = build_model({"kind": "mlp", "hidden": [4]}, (3,), 2)
    arch = architecture_json({"kind": "mlp", "hidden": [5]}, (3,), 2)
    with pytest.raises(RuntimeError):
        rebuild_model({"architecture": arch}, model.state_dict())
    with pytest.raises(ValueError):
        rebuild_model({"format_version": 99, "architecture": arch}, model.state_dict())


def test_parameter_limit():
    with pytest.raises(SpecError) as info:
        build_model({"kind": "mlp", "hidden": [4096, 4096, 4096, 4096]}, (100_000,), 10)
    assert info.value.field == "model" and f"{MAX_PARAMETERS:,}" in info.value.message


@pytest.mark.parametrize("shape", [(3, 4, 28, 28), (2, 3, 7, 7), (1, 1, 2, 3), (5, 2, 9, 4), (2, 8, 14, 15)])
def test_fast_cpu_max_pool_is_max_pool2d_bit_for_bit(shape):
    from core.models.nets import MaxPool2

    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen)
    x[0, 0, 0, :2] = float("nan")  # NaN propagates as in max_pool2d
    x[-1, -1, :2, :2] = 0.25  # a tied window
    pool = MaxPool2()
    with torch.no_grad():
        fast = pool(x)
    want = torch.nn.functional.max_pool2d(x, 2)
    assert fast.shape == want.shape and fast.is_contiguous()
    assert torch.equal(torch.nan_to_num(fast, nan=7.0), torch.nan_to_num(want, nan=7.0))
    # with autograd on it is max_pool2d itself: the gradient of a tied window goes to one element
    xg = x.nan_to_num(0.0).requires_grad_(True)
    pool(xg).sum().backward()
    xr = x.nan_to_num(0.0).requires_grad_(True)
    torch.nn.functional.max_pool2d(xr, 2).sum().backward()
    assert torch.equal(xg.grad, xr.grad)


def test_cnn_predictions_are_the_same_with_the_fast_pool():
    """The CNN's no-grad forward (validation, prediction) equals its forward through max_pool2d."""
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    net = build_model({"kind": "cnn"}, (1, 28, 28), 10, mean=np.zeros((1, 1, 1)), std=np.ones((1, 1, 1))).eval()
    with torch.no_grad():
        fast = net(x)
    with torch.enable_grad():
        slow = net(x)  # autograd on: the max_pool2d path
    assert torch.equal(fast, slow.detach())
