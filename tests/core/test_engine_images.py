"""Tests of the engine on image workloads: augmentation, schedules, precision, clipping, the streaming data
path, warm starts, exact resume, saved artifacts and the options' bounds.

    .venv/bin/python -m pytest tests/core/test_engine_images.py -q

CPU only, one intra-op thread: synthetic 3x16x16 uint8 images (three classes told apart by their
brightest channel), timm's tiny `test_resnet` (small-image stem) or the small CNN where the network does
not matter, 1-3 epochs of 90 training images.
"""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.artifacts import load_model_from_artifacts, write_artifacts
from core.checkpoint import CheckpointStore
from core.data import ArrayDataset
from core.errors import SpecError
from core.models.init import InitWeights
from core.models.nets import standardization_stats
from core.storage import LocalStorage
from core.training import NoopHooks, TrainingSpec, TrainPlan, engine, parse_training_spec, train
from core.training import feed as feed_module
from core.training.augment import Augmenter
from core.training.rng import augment_seeds
from core.training.rows import RowReader

RESNET = {"kind": "timm", "architecture": "test_resnet"}
CNN = {"kind": "cnn", "channels": [8], "hidden": [16]}
FULL_AUGMENT = {
    "random_resized_crop": {"scale": [0.5, 1.0]},
    "horizontal_flip": True,
    "trivial_augment": True,
    "color_jitter": 0.2,
    "random_erasing": 0.25,
}
PREPROCESSING = {"kind": "image", "size": [16, 16], "resize": "stretch", "channels": 3}


def images(n_per_class: int = 40, shape=(3, 16, 16), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    x = rng.normal(90.0, 30.0, size=(len(y), *shape))
    for cls in range(3):
        x[y == cls, cls % shape[0]] += 70.0
    return np.clip(x, 0, 255).astype(np.uint8), y


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these networks are so small that two threads spend their time waiting for
    each other (a test_resnet epoch took 6-12 s with two on a busy two-core machine, 0.6 s with one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ds() -> ArrayDataset:
    x, y = images()
    return ArrayDataset(x, y, ["red", "green", "blue"], preprocessing=PREPROCESSING)


class Recorder(NoopHooks):
    def __init__(self, crash_at_checkpoint: int | None = None) -> None:
        self.start: dict | None = None
        self.epochs: list[int] = []
        self.crash_at_checkpoint = crash_at_checkpoint

    def on_start(self, info):
        self.start = info

    def on_epoch(self, epoch, epochs, record):
        self.epochs.append(epoch)

    def on_checkpoint(self, epoch):
        if epoch == self.crash_at_checkpoint:
            raise KeyboardInterrupt("simulated crash")


def plan(dataset, model=None, *, budget=None, workers=1, init=None, **training) -> TrainPlan:
    spec = TrainingSpec(**{"epochs": 2, "seed": 3, "batch_size": 45, "val_fraction": 0.25, **training})
    extra = {"data_budget_bytes": budget} if budget is not None else {}
    return TrainPlan(
        dataset, None, {"kind": "cross_entropy"}, model or RESNET, spec, "cpu",
        init=init, loader_workers=workers, **extra,
    )  # fmt: skip


def store(tmp_path, name: str) -> CheckpointStore:
    return CheckpointStore(LocalStorage(tmp_path), f"jobs/{name}")


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def strip_timing(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in history]


def spec_error(call, *args, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        call(*args, **kwargs)
    assert info.value.status == 422
    return info.value


# ---------------------------------------------------------------------------------------------- augmentation


def test_augmentation_draws_per_image_and_leaves_the_global_rng_alone():
    augmenter = Augmenter(parse_training_spec({"augment": FULL_AUGMENT}).augment, (3, 16, 16))
    x = torch.from_numpy(images(1)[0][:1]).expand(16, -1, -1, -1).contiguous()  # one image, 16 times
    seeds = augment_seeds(16, seed=1, epoch=1)
    before = torch.get_rng_state()
    out = augmenter(x, seeds)
    assert torch.equal(torch.get_rng_state(), before)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert len({row.numpy().tobytes() for row in out}) >= 14  # each copy its own way (two may meet)
    assert torch.equal(augmenter(x, seeds), out)  # the seeds alone decide
    assert torch.equal(augmenter(x[5:6], seeds[5:6])[0], out[5])  # whatever the batch around it
    assert not torch.equal(augmenter(x, augment_seeds(16, seed=1, epoch=2)), out)


def test_training_with_and_without_augmentation(ds):
    hooks = Recorder()
    augmented = train(plan(ds, augment=FULL_AUGMENT), hooks)
    plain = train(plan(ds))
    assert hooks.start["augment"] == parse_training_spec({"augment": FULL_AUGMENT}).augment.model_dump()
    assert augmented.history[0]["train"] != plain.history[0]["train"]
    assert np.array_equal(augmented.val_indices, plain.val_indices)
    assert augmented.model_json["training"]["augment"]["trivial_augment"] is True
    assert "augment" not in plain.model_json["training"]  # defaults stay out of the dump
    for result in (augmented, plain):
        assert result.epochs_completed == 2 and np.isfinite(result.final_metrics["loss"])


# ---------------------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    "scheduler, expected",
    [
        ({"kind": "cosine", "warmup_epochs": 1}, lambda lrs: lrs[0] < lrs[1] == 0.01 and 0 < lrs[2] < 0.01),
        ({"kind": "onecycle"}, lambda lrs: lrs[0] < max(lrs) <= 0.01 and lrs[-1] < max(lrs)),
        (
            {"kind": "step", "step_epochs": 1, "gamma": 0.5},
            lambda lrs: lrs == pytest.approx([0.01, 0.005, 0.0025]),
        ),
        (
            {"kind": "step", "warmup_epochs": 1, "step_epochs": 2, "gamma": 0.5},
            lambda lrs: lrs == pytest.approx([0.005, 0.01, 0.01]),
        ),
    ],
)
def test_each_schedule_sets_the_learning_rate(ds, scheduler, expected):
    result = train(plan(ds, CNN, epochs=3, learning_rate=0.01, scheduler=scheduler))
    lrs = [r["lr"] for r in result.history]
    assert expected(lrs), lrs
    assert result.model_json["training"]["scheduler"]["kind"] == scheduler["kind"]


# ---------------------------------------------------------------------------------------------- precision


def test_fp32_on_cpu_by_default(ds):
    hooks = Recorder()
    result = train(plan(ds, CNN, epochs=1), hooks)
    assert hooks.start["precision"] == "float32" and hooks.start["data"] == "resident"
    assert "precision" not in result.model_json["training"]


def test_bf16_autocast_on_cpu(ds, monkeypatch):
    seen: list[torch.dtype] = []
    real = torch.nn.Conv2d.forward

    def recording(self, x):
        out = real(self, x)
        if self.training:
            seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", recording)
    hooks = Recorder()
    result = train(plan(ds, precision="bf16"), hooks)
    assert hooks.start["precision"] == "bfloat16" and set(seen) == {torch.bfloat16}
    assert np.isfinite(result.final_metrics["loss"]) and result.val_probs.dtype == np.float32
    assert next(result.model.parameters()).dtype == torch.float32


def test_fp16_gradient_scaler_is_checkpointed_and_resumes_exactly(tmp_path):
    rng = np.random.default_rng(1)
    tabular = ArrayDataset(
        rng.normal(size=(240, 12)).astype(np.float32), rng.integers(0, 3, 240), list("abc")
    )
    p = plan(tabular, {"kind": "mlp", "hidden": [16]}, epochs=3, precision="fp16", batch_size=60)
    straight = train(p)
    crashing = store(tmp_path, "fp16")
    with pytest.raises(KeyboardInterrupt):
        train(p, Recorder(crash_at_checkpoint=2), crashing)
    saved = crashing.load_latest()
    assert saved["scaler"]["scale"] > 0 and set(saved["scaler"]) >= {"scale", "_growth_tracker"}
    resumed = train(p, Recorder(), crashing)
    assert same_weights(straight.model, resumed.model)
    assert strip_timing(straight.history) == strip_timing(resumed.history)


def test_compile_wraps_the_training_forward(ds, monkeypatch):
    compiled: list[torch.nn.Module] = []

    def fake_compile(model, **kwargs):
        compiled.append(model)
        return lambda x: model(x)

    monkeypatch.setattr(torch, "compile", fake_compile)
    result = train(plan(ds, CNN, epochs=1, compile=True))
    assert len(compiled) == 1 and compiled[0] is result.model
    assert result.model_json["training"]["compile"] is True


# ---------------------------------------------------------------------------------------------- clipping


def test_gradient_clipping_bounds_every_step(ds):
    """Plain SGD moves the weights by lr * (clipped gradient) per step: at most lr * max_norm."""
    lr, clip, steps = 0.5, 1e-3, 2 * 2  # 2 epochs of 2 batches
    p = plan(ds, CNN, optimizer="sgd", momentum=0.0, learning_rate=lr, grad_clip_norm=clip)
    torch.manual_seed(0)
    start = train(plan(ds, CNN, epochs=1, learning_rate=1e-9, optimizer="sgd", momentum=0.0))
    clipped, free = train(p), train(plan(ds, CNN, optimizer="sgd", momentum=0.0, learning_rate=lr))

    def moved(result) -> float:
        a, b = result.model.state_dict(), start.model.state_dict()
        return float(torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a if a[k].is_floating_point())))

    assert moved(clipped) <= steps * lr * clip * 1.01 + 1e-6  # the 1e-9 lr run is the start, give or take
    assert moved(free) > 10 * steps * lr * clip


# ---------------------------------------------------------------------------------------------- data paths


def memmapped(tmp_path, dataset: ArrayDataset) -> ArrayDataset:
    path = tmp_path / "x.npy"
    np.save(path, dataset.x)
    x = np.load(path, mmap_mode="r")
    return ArrayDataset(x, dataset.y, dataset.classes, preprocessing=dataset.preprocessing)


@pytest.mark.parametrize("augment", [None, FULL_AUGMENT])
def test_streaming_and_resident_paths_train_alike(ds, tmp_path, monkeypatch, augment):
    on_disk = memmapped(tmp_path, ds)
    assert isinstance(on_disk.x, np.memmap) and RowReader(on_disk.x).file_backed
    reads: list[int] = []
    real_read = RowReader.read

    def counting(self, rows):
        reads.append(len(rows))
        return real_read(self, rows)

    monkeypatch.setattr(RowReader, "read", counting)
    hooks = Recorder()
    streamed = train(plan(on_disk, CNN, budget=1024, workers=2, augment=augment), hooks)
    assert hooks.start["data"] == "streaming"
    assert max(reads) <= 256  # batches (45), validation chunks (256): never the whole split
    resident_hooks = Recorder()
    resident = train(plan(ds, CNN, augment=augment), resident_hooks)
    assert resident_hooks.start["data"] == "resident"

    assert streamed.final_metrics == resident.final_metrics
    assert strip_timing(streamed.history) == strip_timing(resident.history)
    assert same_weights(streamed.model, resident.model)


def test_streaming_workers_are_stopped(ds, monkeypatch):
    closed: list[bool] = []
    real_close = feed_module.StreamingFeed.close

    def recording(self):
        real_close(self)
        closed.append(self.loader is None)

    monkeypatch.setattr(feed_module.StreamingFeed, "close", recording)
    train(plan(ds, CNN, epochs=1, budget=1))
    assert closed == [True]


def test_statistics_of_a_memmap_in_bounded_chunks(ds, tmp_path):
    on_disk = memmapped(tmp_path, ds)
    rows = np.arange(0, len(ds.y), 2)
    reader = RowReader(on_disk.x)
    chunked = standardization_stats(reader.chunks(rows, max_bytes=3 * 768))
    whole = standardization_stats(ds.x[rows])
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-6)
    assert all(len(c) <= 3 for c in reader.chunks(rows, max_bytes=3 * 768))
    assert whole[0].shape == (3, 1, 1) and 50 < float(whole[0].mean()) < 200  # in 0-255 pixel units


def rss_file_bytes() -> int:
    """This process's resident file-backed pages (what reading through a memory map adds to)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("RssFile:"))
    return int(line.split()[1]) * 1024


def test_reading_a_memmap_maps_none_of_it(tmp_path):
    rows, row = 1024, (3, 64, 64)  # 12 MiB per 1024 rows
    np.save(tmp_path / "big.npy", np.zeros((4 * rows, *row), dtype=np.uint8))  # 48 MiB
    x = np.load(tmp_path / "big.npy", mmap_mode="r")
    before = rss_file_bytes()
    total = sum(int(c.sum(dtype=np.int64)) + len(c) for c in RowReader(x).chunks(np.arange(len(x)), 1 << 20))
    assert total == len(x) and rss_file_bytes() - before < 8 << 20  # read it all, mapped ~nothing
    before = rss_file_bytes()
    assert int(x[: 2 * rows].sum(dtype=np.int64)) == 0  # the control: reading through the map
    assert rss_file_bytes() - before > 16 << 20


# ---------------------------------------------------------------------------------------------- warm start


def test_warm_start_loads_weights_resets_the_head_and_freezes_the_backbone(ds):
    source = train(plan(ds, epochs=1))
    tensors = {k: v.clone() for k, v in source.model.state_dict().items()}
    init = InitWeights(tensors=tensors, classes=["a", "b", "c"], source="job:test")  # other classes
    spec = {**RESNET, "init": {"from_job": "0f8fad5b-d9cb-469f-a165-70867728950e"}, "freeze": "backbone"}
    hooks = Recorder()
    result = train(plan(ds, spec, init=init, seed=4), hooks)

    info = hooks.start["init"]
    assert info["source"] == "job:test" and info["head_reset"] is True and info["loaded"] > 0
    assert result.model_json["init"]["source"] == "job:test"
    after = result.model.state_dict()
    for name, value in after.items():
        if name.startswith("body.fc."):
            assert not torch.equal(value, tensors[name]), name  # re-initialised, then trained
        elif name.startswith("standardize."):
            continue
        else:  # weights and the BatchNorm running statistics: frozen (eval-mode BN)
            assert torch.equal(value, tensors[name]), name


def test_warm_start_with_the_same_classes_keeps_training_everything(ds):
    source = train(plan(ds, CNN, epochs=1))
    init = InitWeights(tensors=source.model.state_dict(), classes=ds.classes, source="weights:w")
    spec = {**CNN, "init": {"weights": "0f8fad5b-d9cb-469f-a165-70867728950e"}, "backbone_lr_factor": 0.5}
    hooks = Recorder()
    result = train(plan(ds, spec, init=init, epochs=1), hooks)
    assert hooks.start["init"]["head_reset"] is False
    assert not same_weights(result.model, source.model)
    cold = train(plan(ds, CNN, epochs=1, seed=4))
    assert result.final_metrics["loss"] < cold.final_metrics["loss"]  # two epochs' worth beats one


def test_unresolved_warm_start_is_reported(ds):
    warnings: list[str] = []

    class Warned(Recorder):
        def on_warning(self, message):
            warnings.append(message)

    spec = {**CNN, "init": {"weights": "0f8fad5b-d9cb-469f-a165-70867728950e"}}
    hooks = Warned()
    train(plan(ds, spec, epochs=1), hooks)
    assert hooks.start["init"] is None and any("model.init" in w for w in warnings)


# ---------------------------------------------------------------------------------------------- resume


def test_resume_with_augmentation_and_a_schedule_is_bit_identical(ds, tmp_path):
    p = plan(
        ds, epochs=3, augment=FULL_AUGMENT, scheduler={"kind": "cosine", "warmup_epochs": 1},
        grad_clip_norm=5.0,
    )  # fmt: skip
    straight = train(p, Recorder(), store(tmp_path, "straight"))
    crashing = store(tmp_path, "crash")
    with pytest.raises(KeyboardInterrupt):
        train(p, Recorder(crash_at_checkpoint=2), crashing)
    assert crashing.latest_epoch() == 2 and crashing.load_latest()["schedule"] is not None
    hooks = Recorder()
    resumed = train(p, hooks, crashing)

    assert hooks.start["resumed_from_epoch"] == 2 and hooks.epochs == [3]
    assert same_weights(straight.model, resumed.model)
    assert straight.final_metrics == resumed.final_metrics
    assert strip_timing(straight.history) == strip_timing(resumed.history)
    assert np.array_equal(straight.val_probs, resumed.val_probs)


# ---------------------------------------------------------------------------------------------- artifacts


def test_rebuilt_timm_model_reproduces_the_reported_metrics(ds, tmp_path):
    result = train(plan(ds))
    write_artifacts(result, tmp_path)
    model, model_json = load_model_from_artifacts(tmp_path)
    assert model_json["preprocessing"] == PREPROCESSING
    assert model_json["input"]["dtype"] == "uint8" and model_json["standardize"]["per"] == "channel"

    x = ds.x[result.val_indices]
    with torch.no_grad():
        logits = model(torch.from_numpy(x))
    probs = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(probs, result.val_probs, atol=1e-6, rtol=0)
    accuracy = (logits.argmax(1).numpy() == ds.y[result.val_indices]).mean()
    assert accuracy == pytest.approx(result.final_metrics["accuracy"], abs=1e-12)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final"]["accuracy"] == result.final_metrics["accuracy"]

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(uint8)"
    (onnx_logits,) = session.run(None, {"x": x})
    np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    "training, field",
    [
        (
            {"augment": {"random_resized_crop": {"scale": [0.9, 0.2]}}},
            "training.augment.random_resized_crop.scale",
        ),
        (
            {"augment": {"random_resized_crop": {"scale": [0.0, 1.0]}}},
            "training.augment.random_resized_crop.scale.0",
        ),
        ({"augment": {"color_jitter": 1.5}}, "training.augment.color_jitter"),
        ({"augment": {"random_erasing": -0.1}}, "training.augment.random_erasing"),
        ({"augment": {"horizontal_flip": "yes"}}, "training.augment.horizontal_flip"),
        ({"augment": {"mixup": 0.2}}, "training.augment.mixup"),
        ({"scheduler": {"kind": "linear"}}, "training.scheduler.kind"),
        ({"scheduler": {"warmup_epochs": 1}}, "training.scheduler.kind"),
        ({"scheduler": {"kind": "cosine", "gamma": 0.5}}, "training.scheduler.gamma"),
        ({"scheduler": {"kind": "step", "gamma": 1.0}}, "training.scheduler.gamma"),
        ({"scheduler": {"kind": "step", "step_epochs": 0}}, "training.scheduler.step_epochs"),
        ({"epochs": 3, "scheduler": {"kind": "cosine", "warmup_epochs": 3}}, "training.scheduler"),
        ({"scheduler": {"kind": "onecycle", "warmup_epochs": 0}}, "training.scheduler.warmup_epochs"),
        ({"precision": "fp8"}, "training.precision"),
        ({"compile": 1}, "training.compile"),
        ({"grad_clip_norm": 0}, "training.grad_clip_norm"),
        ({"grad_clip_norm": 1e5}, "training.grad_clip_norm"),
    ],
)
def test_bad_options_name_their_field(training, field):
    assert spec_error(parse_training_spec, training).field == field


def test_augmentation_needs_images_it_can_apply_to(ds):
    rng = np.random.default_rng(0)
    tabular = ArrayDataset(rng.normal(size=(60, 8)).astype(np.float32), np.repeat([0, 1, 2], 20), list("abc"))
    err = spec_error(train, plan(tabular, {"kind": "mlp"}, augment={"horizontal_flip": True}))
    assert err.field == "training.augment" and "image" in err.reason
    floats = ArrayDataset(ds.x.astype(np.float32) / 255, ds.y, ds.classes)
    err = spec_error(train, plan(floats, CNN, augment={"trivial_augment": True}))
    assert err.field == "training.augment.trivial_augment" and "uint8" in err.reason
    four = ArrayDataset(images(10, shape=(4, 16, 16))[0], images(10, shape=(4, 16, 16))[1], list("abc"))
    err = spec_error(train, plan(four, CNN, augment={"color_jitter": 0.1}))
    assert err.field == "training.augment.color_jitter" and "channels" in err.reason
    result = train(plan(floats, CNN, epochs=1, augment={"horizontal_flip": True, "random_erasing": 0.5}))
    assert result.epochs_completed == 1  # geometric augmentation and erasing take float images too


def test_checkpoint_fingerprint_of_older_specs_is_unchanged():
    """Fields added for images stay out of a spec's dump at their defaults: old checkpoints still resume."""
    dump = TrainingSpec(seed=1).model_dump(mode="json")
    assert set(dump) == {
        "epochs", "batch_size", "optimizer", "learning_rate", "weight_decay", "momentum", "val_fraction",
        "seed", "patience", "max_runtime_s", "checkpoint_every",
    }  # fmt: skip
    assert engine.DEVICE_DATA_BUDGET_BYTES == 2 << 30


def test_job_validation_checks_augmentation_against_the_dataset():
    from core.jobspec import JobCreate, validate_job

    job = JobCreate.model_validate(
        {"dataset": "builtin:digits", "training": {"augment": {"color_jitter": 0.2}}}
    )
    classes = [str(i) for i in range(10)]
    assert validate_job(job, classes, max_epochs=10)["training"]["augment"] == {"color_jitter": 0.2}
    err = spec_error(validate_job, job, classes, max_epochs=10, feature_shape=[64], dtype="float32")
    assert err.field == "training.augment"
    err = spec_error(validate_job, job, classes, max_epochs=10, feature_shape=[1, 8, 8], dtype="float32")
    assert err.field == "training.augment.color_jitter"
    validate_job(job, classes, max_epochs=10, feature_shape=[3, 32, 32], dtype="uint8")
