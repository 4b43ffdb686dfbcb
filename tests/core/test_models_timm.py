"""Tests of the timm model kind (core/models/timm_nets.py, registry.py) and warm starts (init.py).

    .venv/bin/python -m pytest tests/core/test_models_timm.py -q

CPU only, with timm's tiny `test_*` architectures (a few hundred thousand parameters each); nothing is
downloaded. One end-to-end run trains `test_resnet` for 2 epochs through the engine and rebuilds it
from its artifacts.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch
from safetensors.torch import save as save_safetensors

from core.artifacts import export_onnx, load_model_from_artifacts, write_artifacts
from core.data import ArrayDataset
from core.errors import SpecError
from core.models import (
    MODEL_KINDS,
    architecture_json,
    build_model,
    head_parameter_names,
    load_init_weights,
    param_groups,
    parse_model_spec,
    rebuild_model,
)
from core.models import timm_nets
from core.training import TrainingSpec, TrainPlan, train

JOB_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SHAPES = [(3, 16, 16), (1, 28, 28)]


def timm_spec(architecture: str, **fields) -> dict:
    return {"kind": "timm", "architecture": architecture, **fields}


def stats(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    c = shape[0]
    return {"mean": np.full((c, 1, 1), 0.25, np.float32), "std": np.full((c, 1, 1), 2.0, np.float32)}


def spec_error(call, *args, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        call(*args, **kwargs)
    return info.value


def test_the_tiny_test_architectures_exist():
    assert {"test_resnet", "test_efficientnet", "test_vit"} <= set(timm.list_models("test_*"))
    assert set(MODEL_KINDS) == {"linear", "mlp", "cnn", "timm"}


# ---------------------------------------------------------------------------------------------- build


@pytest.mark.parametrize(
    "architecture, shape",
    [(a, s) for a in ("test_resnet", "test_efficientnet") for s in SHAPES] + [("test_vit", (3, 16, 16))],
)
def test_build_forward_and_rebuild_give_identical_logits(architecture, shape):
    torch.manual_seed(0)
    spec = timm_spec(architecture, options={"drop_rate": 0.1})
    model = build_model(spec, shape, 5, **stats(shape)).eval()
    x = torch.randn(4, *shape)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, 5) and torch.isfinite(out).all()

    arch = architecture_json(spec, shape, 5, classes=list("abcde"))
    assert arch["kind"] == "timm" and arch["architecture"] == architecture
    assert arch["options"] == {"drop_rate": 0.1} and arch["in_chans"] == shape[0] and arch["num_classes"] == 5
    assert arch["classes"] == list("abcde") and arch["input_shape"] == list(shape)
    assert arch["preprocessing"]["buffers"] == ["standardize.mean", "standardize.std"]
    assert arch["img_size"] == (list(shape[1:]) if architecture == "test_vit" else None)
    again = rebuild_model({"format_version": 1, "architecture": arch}, model.state_dict())
    with torch.no_grad():
        assert torch.equal(again(x), out)
    assert torch.equal(again.standardize.std, torch.full((shape[0], 1, 1), 2.0))


def test_the_seed_alone_decides_the_initial_weights():
    shape = (3, 16, 16)
    torch.manual_seed(3)
    first = build_model(timm_spec("test_resnet"), shape, 3).state_dict()
    timm_nets._PROBED.clear()  # the meta-device probe draws no random numbers, cached or not
    torch.manual_seed(3)
    second = build_model(timm_spec("test_resnet"), shape, 3).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_integer_images_are_standardised_like_floats():
    shape = (3, 16, 16)
    mean, std = np.full((3, 1, 1), 100.0), np.full((3, 1, 1), 50.0)
    model = build_model(timm_spec("test_resnet"), shape, 3, mean=mean, std=std)
    images = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(model.eval()(images), model(images.float()))


def test_the_network_is_never_pretrained(monkeypatch):
    seen = []
    real = timm.create_model

    def recording(name, pretrained=False, **kwargs):
        seen.append(pretrained)
        return real(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", recording)
    timm_nets._PROBED.clear()
    build_model(timm_spec("test_efficientnet"), (3, 16, 16), 3)
    assert seen and not any(seen)
    err = spec_error(parse_model_spec, timm_spec("test_resnet", options={"pretrained": True}))
    assert err.field == "model.options.pretrained" and "model.init" in err.reason
    err = spec_error(parse_model_spec, timm_spec("resnet18.a1_in1k"))
    assert err.field == "model.architecture" and "pretrained" in err.reason


# ------------------------------------------------------------------------------------------ small-image stem


def feature_map(model, x: torch.Tensor) -> tuple[int, int]:
    with torch.no_grad():
        return tuple(model.body.forward_features(model.standardize(x)).shape[-2:])


def test_small_image_stem_keeps_the_spatial_size():
    x = torch.randn(2, 3, 16, 16)
    small = build_model(timm_spec("test_resnet", small_image_stem=True), (3, 16, 16), 3).eval()
    plain = build_model(timm_spec("test_resnet", small_image_stem=False), (3, 16, 16), 3).eval()
    assert feature_map(small, x) == (2, 2)  # stride 8: three strided stages, nothing in the stem
    assert feature_map(plain, x) == (1, 1)  # stride 32: 16 px is gone by the third stage
    assert isinstance(small.body.maxpool, torch.nn.Identity) and small.body.conv1[0].stride == (1, 1)
    with torch.no_grad():  # the stem output keeps the input size
        stem = small.body.act1(small.body.bn1(small.body.conv1(x)))
    assert stem.shape[-2:] == (16, 16)


def test_small_image_stem_of_the_standard_7x7_stem():
    spec = timm_spec("resnet18", small_image_stem=True)
    model = build_model(spec, (1, 32, 32), 3).eval()
    conv = model.body.conv1
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.in_channels == 1
    assert feature_map(model, torch.randn(2, 1, 32, 32)) == (4, 4)
    assert model.body.feature_info[-1]["reduction"] == 8


def test_small_image_stem_auto_and_where_it_does_not_apply():
    assert architecture_json(timm_spec("test_resnet"), (3, 16, 16), 3)["small_image_stem"] is True
    assert architecture_json(timm_spec("test_resnet"), (3, 64, 64), 3)["small_image_stem"] is False
    assert architecture_json(timm_spec("test_efficientnet"), (3, 16, 16), 3)["small_image_stem"] is False
    err = spec_error(build_model, timm_spec("test_efficientnet", small_image_stem=True), (3, 16, 16), 3)
    assert err.field == "model.small_image_stem" and "ResNet" in err.reason
    err = spec_error(parse_model_spec, {"kind": "cnn", "small_image_stem": True})
    assert err.field == "model.small_image_stem"


# ---------------------------------------------------------------------------------------------- bad specs


def test_unknown_architecture_names_close_matches():
    err = spec_error(parse_model_spec, timm_spec("test_resnett"))
    assert err.status == 422 and err.field == "model.architecture" and "test_resnet" in err.reason
    assert spec_error(parse_model_spec, {"kind": "timm"}).field == "model.architecture"
    err = spec_error(parse_model_spec, {"kind": "mlp", "architecture": "resnet18"})
    assert err.field == "model.architecture"


@pytest.mark.parametrize(
    "options, field",
    [
        ({"bogus": 1}, "model.options.bogus"),
        ({"drop_rate": 0.9}, "model.options.drop_rate"),
        ({"drop_path_rate": -0.1}, "model.options.drop_path_rate"),
        ({"global_pool": "median"}, "model.options.global_pool"),
        ({"drop_rate": "0.1"}, "model.options.drop_rate"),
    ],
)
def test_options_are_bounded(options, field):
    assert spec_error(parse_model_spec, timm_spec("test_resnet", options=options)).field == field


def test_options_and_inputs_the_architecture_cannot_take():
    spec = timm_spec("test_efficientnet", options={"drop_block_rate": 0.1})
    err = spec_error(build_model, spec, (3, 16, 16), 3)
    assert err.field == "model.options.drop_block_rate"
    err = spec_error(build_model, timm_spec("test_vit", options={"global_pool": "catavgmax"}), (3, 16, 16), 3)
    assert err.field == "model.options.global_pool"
    err = spec_error(build_model, timm_spec("test_vit"), (1, 28, 28), 3)  # patch 16 does not divide 28
    assert err.field == "model.architecture" and "1x28x28" in err.reason
    assert spec_error(build_model, timm_spec("test_resnet"), (64,), 3).field == "model.kind"
    err = spec_error(build_model, timm_spec("resnet152"), (3, 32, 32), 10)  # 58M parameters, never allocated
    assert err.field == "model" and "limit" in err.reason
    err = spec_error(parse_model_spec, {"kind": "mlp", "options": {"drop_rate": 0.1}})
    assert err.field == "model.options"


def test_warm_start_fields():
    spec = parse_model_spec(timm_spec("test_resnet", init={"from_job": JOB_ID}, freeze="backbone"))
    assert spec.init.from_job == JOB_ID and spec.freeze == "backbone" and spec.backbone_lr_factor == 1.0
    assert parse_model_spec(spec.model_dump(mode="json")) == spec
    for bad, field in [
        ({"init": {"from_job": JOB_ID[:-1]}}, "model.init.from_job"),
        ({"init": {"weights": JOB_ID.upper()}}, "model.init.weights"),
        ({"init": {}}, "model.init"),
        ({"init": {"from_job": JOB_ID, "weights": JOB_ID}}, "model.init"),
        ({"init": {"job": JOB_ID}}, "model.init.job"),
        ({"freeze": "backbone"}, "model.freeze"),
        ({"freeze": "all", "init": {"weights": JOB_ID}}, "model.freeze"),
        ({"backbone_lr_factor": 0.0}, "model.backbone_lr_factor"),
        ({"backbone_lr_factor": 1.5}, "model.backbone_lr_factor"),
    ]:
        assert spec_error(parse_model_spec, {"kind": "mlp", **bad}).field == field, bad


def test_dense_specs_dump_as_before():
    """The new fields stay out of a dense spec's dump: its checkpoint fingerprint is unchanged."""
    dump = parse_model_spec({"kind": "cnn", "channels": [8]}).model_dump(mode="json")
    assert dump == {"kind": "cnn", "hidden": [128], "dropout": 0.0, "channels": [8]}
    assert architecture_json({"kind": "mlp"}, (4,), 2) == {
        "kind": "mlp",
        "hidden": [128],
        "dropout": 0.0,
        "channels": [16, 32],
        "input_shape": [4],
        "num_classes": 2,
    }


# ---------------------------------------------------------------------------------------------- ONNX


@pytest.mark.parametrize("architecture", ["test_resnet", "test_efficientnet"])
def test_onnx_export_matches_torch(architecture):
    shape = (3, 16, 16)
    torch.manual_seed(1)
    model = build_model(timm_spec(architecture), shape, 4, **stats(shape)).eval()
    session = ort.InferenceSession(export_onnx(model, shape), providers=["CPUExecutionProvider"])
    for n in (1, 5):
        x = np.random.default_rng(n).normal(size=(n, *shape)).astype(np.float32)
        (onnx_out,) = session.run(None, {"x": x})
        with torch.no_grad():
            np.testing.assert_allclose(onnx_out, model(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------- warm start


def trained_like(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The model's state dict with every float tensor moved away from its initial value."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: v + torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone()
        for k, v in model.state_dict().items()
    }


@pytest.mark.parametrize(
    "spec, shape",
    [(timm_spec("test_resnet"), (3, 16, 16)), (timm_spec("test_vit"), (3, 16, 16)), ({"kind": "mlp"}, (6,))],
)
def test_warm_start_with_other_classes_reinitialises_only_the_head(spec, shape):
    torch.manual_seed(0)
    source = trained_like(build_model(spec, shape, 3), seed=1)
    target = build_model(spec, shape, 4)
    heads = tuple(head_parameter_names(target))
    fresh_head = {k: v.clone() for k, v in target.state_dict().items() if k.startswith(heads)}
    report = load_init_weights(
        target, save_safetensors(source), source_classes=["a", "b", "c"], target_classes=["a", "b", "c", "d"]
    )
    heads = tuple(head_parameter_names(target))
    state = target.state_dict()
    assert report.head_reset and set(report.loaded) | set(report.skipped) == set(state)
    for key, value in state.items():
        if key.startswith(heads):
            assert not torch.equal(value, fresh_head[key]) or value.numel() == 0, key  # drawn again
            assert report.skipped[key].startswith("head re-initialised")
        elif key.startswith("standardize."):
            assert key in report.skipped and not torch.equal(value, source[key])
        else:
            assert torch.equal(value, source[key]), key
    assert report.loaded and all(not k.startswith(heads) for k in report.loaded)


def test_warm_start_with_the_same_classes_loads_the_head_too():
    shape = (3, 16, 16)
    source = trained_like(build_model(timm_spec("test_resnet"), shape, 3), seed=2)
    target = build_model(timm_spec("test_resnet"), shape, 3)
    report = load_init_weights(target, source, source_classes=["x", "y", "z"], target_classes=["x", "y", "z"])
    assert not report.head_reset and torch.equal(target.body.fc.weight, source["body.fc.weight"])
    reordered = build_model(timm_spec("test_resnet"), shape, 3)
    report = load_init_weights(
        reordered, source, source_classes=["x", "y", "z"], target_classes=["z", "y", "x"]
    )
    assert report.head_reset and not torch.equal(reordered.body.fc.weight, source["body.fc.weight"])


def test_warm_start_refuses_what_does_not_fit():
    model = build_model(timm_spec("test_resnet"), (3, 16, 16), 3)
    other = build_model({"kind": "mlp", "hidden": [8]}, (6,), 3).state_dict()
    kw = {"source_classes": ["a", "b", "c"], "target_classes": ["a", "b", "c"]}
    assert spec_error(load_init_weights, model, other, **kw).field == "model.init"
    assert spec_error(load_init_weights, model, b"not safetensors", **kw).field == "model.init"
    assert spec_error(load_init_weights, model, {"w": np.zeros(3)}, **kw).field == "model.init"
    grown = build_model(timm_spec("test_resnet"), (1, 16, 16), 3)  # another stem: skipped, reported
    report = load_init_weights(grown, model.state_dict(), **kw)
    assert "shape" in report.skipped["body.conv1.0.weight"] and "body.layer1.0.conv1.weight" in report.loaded


def test_frozen_backbone_gets_no_gradient():
    model = build_model(timm_spec("test_resnet"), (3, 16, 16), 3)
    groups = param_groups(model, freeze="backbone", backbone_lr_factor=0.5, lr=0.01)
    assert [g["name"] for g in groups] == ["head"] and groups[0]["lr"] == 0.01
    optimizer = torch.optim.AdamW(groups)
    model.train()(torch.randn(4, 3, 16, 16)).sum().backward()
    optimizer.step()
    for name, param in model.named_parameters():
        if name.startswith("body.fc."):
            assert param.requires_grad and param.grad is not None
        else:
            assert not param.requires_grad and param.grad is None, name


@pytest.mark.parametrize(
    "spec, shape, head",
    [
        (timm_spec("test_efficientnet"), (3, 16, 16), "body.classifier"),
        ({"kind": "cnn", "hidden": [8]}, (1, 8, 8), "body.9"),  # the last Linear of the Sequential body
    ],
)
def test_param_groups_learning_rates(spec, shape, head):
    model = build_model(spec, shape, 3)
    assert head_parameter_names(model) == [head]
    groups = param_groups(model, freeze="none", backbone_lr_factor=0.1, lr=0.02)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 0.02), ("backbone", pytest.approx(0.002))]
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters()) and len(set(grouped)) == len(grouped)
    in_head = {id(p) for n, p in model.named_parameters() if n.startswith(head + ".")}
    assert in_head and in_head == {id(p) for p in groups[0]["params"]}
    optimizer = torch.optim.SGD(groups, lr=0.02)
    assert [g["lr"] for g in optimizer.param_groups] == [0.02, pytest.approx(0.002)]
    for bad, field in [
        ({"freeze": "all"}, "model.freeze"),
        ({"backbone_lr_factor": 0.0}, "model.backbone_lr_factor"),
    ]:
        assert spec_error(param_groups, model, lr=0.1, **bad).field == field


# ---------------------------------------------------------------------------------------------- end to end


def synthetic_images(n_per_class: int = 24, shape=(3, 16, 16)) -> ArrayDataset:
    """Three classes told apart by which channel is bright, plus noise."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.3, size=(3 * n_per_class, *shape)).astype(np.float32)
    y = np.repeat(np.arange(3), n_per_class)
    for cls in range(3):
        x[y == cls, cls] += 1.0
    return ArrayDataset(x, y, ["red", "green", "blue"])


def test_train_a_timm_model_and_rebuild_it_from_its_artifacts(tmp_path):
    ds = synthetic_images()
    spec = timm_spec("test_resnet", options={"drop_rate": 0.1})
    training = TrainingSpec(epochs=2, seed=5, batch_size=16)
    plan = TrainPlan(ds, None, {"kind": "cross_entropy"}, spec, training, "cpu")
    result = train(plan)
    assert result.epochs_completed == 2 and result.model_json["architecture"]["kind"] == "timm"
    assert result.model_json["architecture"]["small_image_stem"] is True
    write_artifacts(result, tmp_path)

    model, model_json = load_model_from_artifacts(tmp_path)
    x = torch.from_numpy(ds.x[result.val_indices])
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(logits, result.model(x))
    accuracy = (logits.argmax(1).numpy() == ds.y[result.val_indices]).mean()
    assert accuracy == pytest.approx(result.final_metrics["accuracy"], abs=1e-12)
    probs = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(probs, result.val_probs, atol=1e-6, rtol=0)
    assert model_json["model_spec"]["architecture"] == "test_resnet"
