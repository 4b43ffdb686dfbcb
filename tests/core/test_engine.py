"""Tests of core.training: the spec, the loop, resume determinism, stop reasons and failures.

    /tmp/venv/bin/python -m pytest tests/core/test_engine.py -q

All runs use the built-in digits data on CPU and take a fraction of a second each.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointStore
from core.data import ArrayDataset, load_builtin, select_classes
from core.errors import SpecError, TrainingError
from core.storage import LocalStorage
from core.training import (
    NoopHooks,
    TrainHooks,
    TrainingSpec,
    TrainPlan,
    engine,
    parse_training_spec,
    train,
    with_seed,
)


class Recorder(NoopHooks):
    """Records every call; `stop_after` cancels, `crash_at_checkpoint` raises after that checkpoint."""

    def __init__(self, stop_after: int | None = None, crash_at_checkpoint: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.epochs_seen = 0
        self.stop_after = stop_after
        self.crash_at_checkpoint = crash_at_checkpoint

    def on_start(self, info):
        self.calls.append(("start", info))

    def on_epoch(self, epoch, epochs, record):
        self.epochs_seen = epoch
        self.calls.append(("epoch", epoch, epochs, record))

    def on_checkpoint(self, epoch):
        self.calls.append(("checkpoint", epoch))
        if epoch == self.crash_at_checkpoint:
            raise KeyboardInterrupt("simulated crash")

    def should_stop(self):
        return self.stop_after is not None and self.epochs_seen >= self.stop_after

    def on_warning(self, message):
        self.calls.append(("warning", message))

    def names(self):
        return [c[0] for c in self.calls]


@pytest.fixture(scope="module")
def digits():
    return select_classes(load_builtin("digits"), ["0", "1", "2", "3", "4"])


def plan(ds, *, loss=None, model=None, similarity=None, **training) -> TrainPlan:
    spec = TrainingSpec(**{"epochs": 3, "seed": 7, "batch_size": 64, **training})
    return TrainPlan(
        dataset=ds,
        similarity_spec=similarity,
        loss_spec=loss or {"kind": "cross_entropy"},
        model_spec=model or {"kind": "mlp", "hidden": [32]},
        training=spec,
        device="cpu",
    )


def store(tmp_path, name="ck") -> CheckpointStore:
    return CheckpointStore(LocalStorage(tmp_path), f"jobs/{name}")


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def strip_timing(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in history]


# ---------------------------------------------------------------------------------------------- spec


def test_training_spec_bounds():
    assert parse_training_spec(None).epochs == 10
    for bad, field in [
        ({"epochs": 0}, "training.epochs"),
        ({"epochs": 1001}, "training.epochs"),
        ({"batch_size": 0}, "training.batch_size"),
        ({"optimizer": "lbfgs"}, "training.optimizer"),
        ({"learning_rate": 0}, "training.learning_rate"),
        ({"learning_rate": 11}, "training.learning_rate"),
        ({"momentum": 1.0}, "training.momentum"),
        ({"val_fraction": 0.6}, "training.val_fraction"),
        ({"seed": -1}, "training.seed"),
        ({"seed": 2**31}, "training.seed"),
        ({"patience": 0}, "training.patience"),
        ({"max_runtime_s": 8 * 86400}, "training.max_runtime_s"),
        ({"checkpoint_every": 0}, "training.checkpoint_every"),
        ({"bogus": 1}, "training.bogus"),
    ]:
        with pytest.raises(SpecError) as info:
            parse_training_spec(bad)
        assert info.value.field == field, bad
    seeded = with_seed(TrainingSpec())
    assert seeded.seed is not None and with_seed(seeded) is seeded


def test_needs_a_concrete_seed(digits):
    p = plan(digits)
    p.training = TrainingSpec(epochs=1)
    with pytest.raises(SpecError) as info:
        train(p)
    assert info.value.field == "training.seed"


# ---------------------------------------------------------------------------------------------- the loop


def test_train_reports_and_returns_everything(digits, tmp_path):
    hooks = Recorder()
    assert isinstance(hooks, TrainHooks)
    result = train(
        plan(digits, similarity={"kind": "ordinal"}, loss={"kind": "simloss"}), hooks, store(tmp_path)
    )

    assert result.stop_reason == "completed" and result.epochs_completed == 3 and result.device == "cpu"
    assert hooks.names() == ["start", "epoch", "checkpoint", "epoch", "checkpoint", "epoch", "checkpoint"]
    info = hooks.calls[0][1]
    assert info["device"] == "cpu" and info["resumed_from_epoch"] is None
    assert info["num_train"] + info["num_val"] == digits.num_samples

    record = hooks.calls[-2][3]
    assert set(record) == {"epoch", "train", "val", "lr", "seconds", "samples_per_s"}
    assert set(record["train"]) == {"loss", "accuracy"}
    assert {"loss", "accuracy", "nll", "count"} <= set(record["val"]) and "confusion_matrix" not in record[
        "val"
    ]
    assert record["val"]["count"] == info["num_val"] and record["lr"] == pytest.approx(1e-3)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]

    m = result.final_metrics
    assert (
        np.array(m["confusion_matrix"]).shape == (5, 5)
        and np.array(m["confusion_matrix"]).sum() == info["num_val"]
    )
    assert m["accuracy"] > 0.7
    assert result.val_probs.shape == (info["num_val"], 5) and result.val_probs.dtype == np.float32
    assert np.allclose(result.val_probs.sum(1), 1.0, atol=1e-5)
    assert np.array_equal(result.val_targets, digits.y[result.val_indices])
    assert not result.model.training and next(result.model.parameters()).device.type == "cpu"

    mj = result.model_json
    assert mj["classes"] == digits.classes and mj["seed"] == 7 and mj["architecture"]["kind"] == "mlp"
    assert mj["similarity"] == {"kind": "ordinal"} and mj["loss"] == {"kind": "simloss"}
    assert mj["preprocessing"]["per"] == "feature" and mj["training"]["epochs"] == 3
    assert store(tmp_path).epochs() == [2, 3]


def test_split_depends_only_on_seed_and_data(digits):
    a = train(plan(digits, epochs=1))
    b = train(plan(digits, epochs=1, loss={"kind": "soft_labels"}, similarity={"kind": "ordinal"}))
    c = train(plan(digits, epochs=1, seed=8))
    assert np.array_equal(a.val_indices, b.val_indices)
    assert not np.array_equal(a.val_indices, c.val_indices)


@pytest.mark.parametrize(
    "model, optimizer, ds_name",
    [
        ({"kind": "mlp", "hidden": [32, 16], "dropout": 0.3}, "adamw", "digits"),
        ({"kind": "cnn", "channels": [4], "hidden": [16], "dropout": 0.2}, "sgd", "digits-images"),
    ],
)
def test_resume_after_crash_is_bit_identical(tmp_path, model, optimizer, ds_name):
    ds = select_classes(load_builtin(ds_name), ["0", "1", "2", "3"])
    p = plan(ds, model=model, optimizer=optimizer, epochs=4, batch_size=32, learning_rate=0.01)
    straight = train(p, Recorder(), store(tmp_path, "straight"))

    crashing = store(tmp_path, "crash")
    with pytest.raises(KeyboardInterrupt):
        train(p, Recorder(crash_at_checkpoint=2), crashing)
    assert crashing.latest_epoch() == 2
    hooks = Recorder()
    resumed = train(p, hooks, crashing)

    assert hooks.calls[0][1]["resumed_from_epoch"] == 2
    assert [c[1] for c in hooks.calls if c[0] == "epoch"] == [3, 4]
    assert_same_weights(straight.model, resumed.model)
    assert straight.final_metrics == resumed.final_metrics
    assert strip_timing(straight.history) == strip_timing(resumed.history)
    assert np.array_equal(straight.val_probs, resumed.val_probs)
    assert resumed.epochs_completed == 4 and resumed.stop_reason == "completed"


def test_resume_between_checkpoints_replays_the_lost_epochs(digits, tmp_path):
    p = plan(digits, model={"kind": "mlp", "hidden": [16], "dropout": 0.5}, epochs=5, checkpoint_every=2)
    straight = train(p)

    class CrashInEpoch3(Recorder):
        def on_epoch(self, epoch, epochs, record):
            if epoch == 3:
                raise RuntimeError("worker killed")

    ck = store(tmp_path)
    with pytest.raises(RuntimeError, match="worker killed"):
        train(p, CrashInEpoch3(), ck)
    assert ck.epochs() == [2]
    resumed = train(p, Recorder(), ck)
    assert_same_weights(straight.model, resumed.model)
    assert straight.final_metrics == resumed.final_metrics
    assert ck.epochs() == [4, 5]  # every 2 epochs, and always at the end


def test_resume_of_a_finished_run_trains_nothing(digits, tmp_path):
    ck = store(tmp_path)
    first = train(plan(digits), None, ck)
    hooks = Recorder()
    again = train(plan(digits), hooks, ck)
    assert "epoch" not in hooks.names() and again.stop_reason == "completed"
    assert_same_weights(first.model, again.model)
    assert first.final_metrics == again.final_metrics and len(again.history) == 3


def test_checkpoint_of_another_plan_is_ignored(digits, tmp_path):
    ck = store(tmp_path)
    train(plan(digits, epochs=2, seed=1), None, ck)
    hooks = Recorder()
    result = train(plan(digits, epochs=1, seed=2), hooks, ck)
    assert any(c[0] == "warning" and "different plan" in c[1] for c in hooks.calls)
    assert hooks.calls[1][1]["resumed_from_epoch"] is None and result.epochs_completed == 1
    assert ck.epochs() == [1]


# ---------------------------------------------------------------------------------------------- stop reasons


def test_cancel_writes_a_checkpoint_first_then_resumes(digits, tmp_path):
    ck = store(tmp_path)
    p = plan(digits, epochs=6, checkpoint_every=5)
    hooks = Recorder(stop_after=2)
    result = train(p, hooks, ck)
    assert result.stop_reason == "cancelled" and result.epochs_completed == 2
    assert hooks.names()[-2:] == ["epoch", "checkpoint"] and ck.latest_epoch() == 2

    resumed = train(p, Recorder(), ck)  # a cancelled checkpoint (e.g. worker shutdown) resumes
    assert resumed.stop_reason == "completed" and resumed.epochs_completed == 6
    assert_same_weights(resumed.model, train(p).model)


def test_early_stopping_keeps_the_best_weights(tmp_path):
    rng = np.random.default_rng(0)
    noise = ArrayDataset(
        rng.normal(size=(200, 20)), rng.integers(0, 2, size=200), ["a", "b"]
    )  # labels are noise
    p = plan(noise, model={"kind": "mlp", "hidden": [256]}, epochs=60, patience=2, learning_rate=0.02)
    result = train(p, None, store(tmp_path))
    assert result.stop_reason == "early_stopped" and result.epochs_completed < 60
    losses = [r["val"]["loss"] for r in result.history]
    best = int(np.argmin(losses)) + 1
    assert result.best_epoch == best and result.model_json["best_epoch"] == best
    assert result.epochs_completed == best + 2
    assert result.final_metrics["loss"] == pytest.approx(losses[best - 1], rel=1e-5)


def test_max_runtime(digits, monkeypatch):
    clock = iter(range(0, 10**9, 1000))
    monkeypatch.setattr(engine, "_now", lambda: float(next(clock)))
    result = train(plan(digits, epochs=5, max_runtime_s=1))
    assert result.stop_reason == "max_runtime" and result.epochs_completed == 1
    assert result.train_seconds >= 1


# ---------------------------------------------------------------------------------------------- failures


def test_non_finite_loss_names_epoch_and_batch(digits, monkeypatch):
    real_build_loss = engine.build_loss

    def nan_on_third_batch(*args, **kwargs):
        loss = real_build_loss(*args, **kwargs)
        calls = {"n": 0}

        class Wrapped(torch.nn.Module):
            def forward(self, logits, targets):
                calls["n"] += 1
                value = loss(logits, targets)
                return value * float("nan") if calls["n"] == 3 else value

        return Wrapped()

    monkeypatch.setattr(engine, "build_loss", nan_on_third_batch)
    with pytest.raises(TrainingError) as info:
        train(plan(digits))
    assert info.value.code == "non_finite_loss" and "epoch 1 batch 3" in info.value.message


@pytest.mark.parametrize("exc", [torch.OutOfMemoryError("CUDA out of memory"), MemoryError()])
def test_out_of_memory(digits, monkeypatch, exc):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr(engine, "_train_one_epoch", boom)
    with pytest.raises(TrainingError) as info:
        train(plan(digits))
    assert info.value.code == "out_of_memory"


def test_untrainable_data(digits):
    tiny = ArrayDataset(np.zeros((3, 2)), np.array([0, 0, 1]), ["a", "b"])
    with pytest.raises(TrainingError) as info:
        train(plan(tiny))
    assert info.value.code == "data_error"


def test_devices(digits):
    assert engine.resolve_device("cpu").type == "cpu"
    with pytest.raises(SpecError):
        engine.resolve_device("tpu")
    if not torch.cuda.is_available():
        hooks = Recorder()
        assert engine.resolve_device("cuda:0", hooks).type == "cpu"
        assert "CUDA is not available" in hooks.calls[0][1]
        assert engine.resolve_device("auto").type == "cpu"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda_with_bf16(digits, tmp_path):
    p = plan(digits, model={"kind": "cnn", "channels": [8]}, epochs=2)
    p.dataset = select_classes(load_builtin("digits-images"), ["0", "1", "2", "3", "4"])
    p.device = "cuda"
    ck = store(tmp_path)
    result = train(p, Recorder(), ck)
    assert result.device.startswith("cuda") and result.stop_reason == "completed"
    assert next(result.model.parameters()).device.type == "cpu"
    assert result.final_metrics["accuracy"] > 0.5
    resumed = train(p, Recorder(), ck)  # resume from a CUDA checkpoint
    assert resumed.epochs_completed == 2
