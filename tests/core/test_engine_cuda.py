"""CUDA tests of the engine on images: bf16 autocast, channels_last, torch.compile, fp16 with its gradient
scaler, augmentation on the device and the streaming path with pinned memory.

    .venv/bin/python -m pytest tests/core/test_engine_cuda.py -q -m cuda

Marked `cuda`; they run where a CUDA device is present (skipped elsewhere). Same synthetic uint8 images
and tiny timm `test_resnet` as tests/core/test_engine_images.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointStore
from core.data import ArrayDataset
from core.storage import LocalStorage
from core.training import NoopHooks, TrainingSpec, TrainPlan, train
from core.training.augment import Augmenter
from core.training.rng import augment_seeds
from core.training.spec import parse_training_spec

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

RESNET = {"kind": "timm", "architecture": "test_resnet"}
AUGMENT = {"random_resized_crop": {"scale": [0.5, 1.0]}, "horizontal_flip": True, "trivial_augment": True,
           "color_jitter": 0.2, "random_erasing": 0.25}  # fmt: skip


class Recorder(NoopHooks):
    def __init__(self, crash_at_checkpoint: int | None = None) -> None:
        self.start: dict | None = None
        self.crash_at_checkpoint = crash_at_checkpoint

    def on_start(self, info):
        self.start = info

    def on_checkpoint(self, epoch):
        if epoch == self.crash_at_checkpoint:
            raise KeyboardInterrupt("simulated crash")


@pytest.fixture(scope="module")
def ds() -> ArrayDataset:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 60)
    x = rng.normal(90.0, 30.0, size=(len(y), 3, 16, 16))
    for cls in range(3):
        x[y == cls, cls] += 70.0
    return ArrayDataset(np.clip(x, 0, 255).astype(np.uint8), y, ["red", "green", "blue"])


def plan(dataset, model=None, **training) -> TrainPlan:
    spec = TrainingSpec(**{"epochs": 2, "seed": 3, "batch_size": 32, **training})
    return TrainPlan(dataset, None, {"kind": "cross_entropy"}, model or RESNET, spec, "cuda")


def test_bf16_and_channels_last_by_default(ds, monkeypatch):
    seen: list[tuple] = []
    real = torch.nn.Conv2d.forward

    def recording(self, x):
        out = real(self, x)
        if self.training:
            seen.append((out.dtype, self.weight.is_contiguous(memory_format=torch.channels_last)))
        return out

    monkeypatch.setattr(torch.nn.Conv2d, "forward", recording)
    hooks = Recorder()
    result = train(plan(ds), hooks)
    if torch.cuda.is_bf16_supported():
        assert hooks.start["precision"] == "bfloat16" and {dtype for dtype, _ in seen} == {torch.bfloat16}
    assert seen and all(channels_last for _, channels_last in seen)
    assert result.device.startswith("cuda") and np.isfinite(result.final_metrics["loss"])
    weights = [p for p in result.model.parameters() if p.dim() == 4]
    assert all(p.device.type == "cpu" and p.is_contiguous() for p in weights)  # back to NCHW on CPU


def test_compile_on_the_gpu(ds):
    result = train(plan(ds, compile=True))
    assert result.epochs_completed == 2 and np.isfinite(result.final_metrics["loss"])
    assert not any(k.startswith("_orig_mod") for k in result.model.state_dict())


def test_fp16_scaler_resumes_from_a_cuda_checkpoint(ds, tmp_path):
    ck = CheckpointStore(LocalStorage(tmp_path), "jobs/fp16")
    p = plan(ds, epochs=3, precision="fp16", grad_clip_norm=1.0)
    with pytest.raises(KeyboardInterrupt):
        train(p, Recorder(crash_at_checkpoint=2), ck)
    assert ck.load_latest()["scaler"]["scale"] > 0
    hooks = Recorder()
    resumed = train(p, hooks, ck)
    assert hooks.start["precision"] == "float16" and hooks.start["resumed_from_epoch"] == 2
    assert resumed.epochs_completed == 3 and np.isfinite(resumed.final_metrics["loss"])


def test_augmentation_on_the_device_draws_per_image(ds):
    augmenter = Augmenter(parse_training_spec({"augment": AUGMENT}).augment, (3, 16, 16))
    x = torch.from_numpy(ds.x[:1]).cuda().expand(8, -1, -1, -1).contiguous()
    seeds = augment_seeds(8, seed=1, epoch=1)
    out = augmenter(x, seeds)
    assert out.device.type == "cuda" and out.dtype == torch.uint8
    assert len({row.cpu().numpy().tobytes() for row in out}) >= 7
    assert torch.equal(augmenter(x, seeds), out)
    hooks = Recorder()
    result = train(plan(ds, augment=AUGMENT, scheduler={"kind": "onecycle"}), hooks)
    assert hooks.start["data"] == "resident" and np.isfinite(result.final_metrics["loss"])


def test_streaming_with_pinned_memory(ds):
    hooks = Recorder()
    p = plan(ds, augment=AUGMENT)
    p.data_budget_bytes, p.loader_workers = 1024, 2
    result = train(p, hooks)
    assert hooks.start["data"] == "streaming"
    assert result.epochs_completed == 2 and np.isfinite(result.final_metrics["loss"])
