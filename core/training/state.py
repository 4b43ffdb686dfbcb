"""What a training run carries between its steps: `TrainSetup` (built once) and `TrainState` (per epoch).

    setup = TrainSetup(...)                               # built by the engine from a TrainPlan
    state = restore_checkpoint(setup, checkpoints, hooks)  # the latest checkpoint of this plan, or fresh
    ...one epoch...
    save_checkpoint(checkpoints, setup, state, elapsed_s, model_json(setup, state))

A checkpoint (format `CHECKPOINT_VERSION`) holds the plan's fingerprint, the epoch, model and optimizer
state dicts, the learning-rate schedule's and the fp16 gradient scaler's (None when the plan has none),
every global RNG state, the early-stopping record `best`, the history, the elapsed seconds and the stop
reason; its metadata (`checkpoint_meta`: steps, the epoch's validation metrics, the model.json) is what
listing shows, and `training.keep_checkpoints` its retention. Augmentation needs no state of its own:
sample i of epoch e is augmented under a seed derived from (seed, e, i) alone (core/training/rng.py). One
written for another plan (another fingerprint) is ignored and cleared.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from core.checkpoint import CheckpointStore, Retention
from core.data.dataset import ArrayDataset
from core.jsonsafe import json_safe
from core.models.spec import ModelSpec
from core.training.hooks import TrainHooks
from core.training.rng import rng_state, set_rng_state
from core.training.spec import TrainingSpec

__all__ = [
    "CHECKPOINT_VERSION",
    "TrainSetup",
    "TrainState",
    "checkpoint_meta",
    "fingerprint",
    "restore_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_VERSION = 1


@dataclass
class TrainSetup:
    """Everything fixed for one run: specs, splits, model, loss, optimizer, schedule and the data feeds
    (the test rows' feed is read once, by the final model)."""

    spec: TrainingSpec
    device: torch.device
    dataset: ArrayDataset
    classes: list[str]
    loss_spec: dict
    model_spec: ModelSpec
    similarity_spec: dict | None
    similarity: Any  # core.similarity's matrix, or None
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, or its torch.compile'd wrapper
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any  # core.training.schedule.Schedule, or None
    scaler: torch.amp.GradScaler | None  # fp16 only
    amp_dtype: torch.dtype | None  # autocast dtype; None: fp32
    fingerprint: str
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_feed: Any  # core.training.feed.ResidentFeed | StreamingFeed
    val_feed: Any  # core.training.feed.EvalFeed
    augmenter: Any  # core.training.augment.Augmenter, or None
    y_train: torch.Tensor  # the training labels (on the device when the data is resident)
    y_val: torch.Tensor
    y_val_cpu: torch.Tensor
    init: dict[str, Any] | None = None  # what the warm start did (source, loaded, skipped, head_reset)
    splits: Any = None  # core.training.splits.Splits: the train / val / test rows
    test_feed: Any = None  # core.training.feed.EvalFeed of the test rows, None without a test split
    y_test_cpu: torch.Tensor | None = None
    decision: dict[str, Any] | None = None  # the job's decision rule {"rule", "threshold"}; None: argmax

    @property
    def trainable(self) -> list[nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]


def _new_best() -> dict[str, Any]:
    return {"loss": math.inf, "epoch": None, "bad_epochs": 0, "model": None}


@dataclass
class TrainState:
    """What changes from epoch to epoch (and, but for the last two fields, what a checkpoint restores)."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_before: float = 0.0  # training seconds of earlier sessions (restored from the checkpoint)
    stop_reason: str | None = None
    best: dict[str, Any] = field(default_factory=_new_best)  # loss, epoch, bad_epochs, model (CPU weights)
    resumed: bool = False
    best_val_logits: tuple[int, torch.Tensor] | None = None  # CPU runs: (epoch, val logits) of the best

    def update_best(self, val_loss: float, model: nn.Module) -> None:
        """Keep a CPU copy of the weights when `val_loss` is a new finite best, else count a bad epoch."""
        best = self.best
        if math.isfinite(val_loss) and val_loss < best["loss"]:
            weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best.update(loss=val_loss, epoch=self.epoch, bad_epochs=0, model=weights)
        else:
            best["bad_epochs"] += 1


def fingerprint(ds: ArrayDataset, similarity_spec, loss_spec, model_spec, spec: TrainingSpec) -> str:
    """Identifies the plan a checkpoint belongs to (specs, seed, data shape, labels)."""
    h = hashlib.sha256()
    description = {
        "similarity": similarity_spec,
        "loss": loss_spec,
        "model": model_spec,
        "training": spec.model_dump(mode="json"),
        "classes": ds.classes,
        "x_shape": list(ds.x.shape),
    }
    if ds.x.dtype != np.float32:  # uint8 images (float32 plans keep the fingerprint they always had)
        description["x_dtype"] = str(ds.x.dtype)
    h.update(json.dumps(description, sort_keys=True, default=str).encode())
    h.update(ds.y.tobytes())
    return h.hexdigest()


def save_checkpoint(
    checkpoints: CheckpointStore,
    setup: TrainSetup,
    state: TrainState,
    elapsed: float,
    described: dict[str, Any] | None = None,
) -> None:
    """Write the checkpoint of `state.epoch` with its metadata (durable when this returns); the store then
    keeps what `training.keep_checkpoints` says. `described`: the model.json of this state
    (`core.training.model_json.model_json(setup, state)`), what a download of the checkpoint serves."""
    checkpoints.save(
        state.epoch,
        _payload(setup, state, elapsed),
        meta=checkpoint_meta(setup, state, described),
        retention=Retention.of(setup.spec.keep_checkpoints),
    )


def checkpoint_meta(setup: TrainSetup, state: TrainState, described: dict[str, Any] | None) -> dict[str, Any]:
    """What listing shows of the checkpoint of `state.epoch` without loading it: the optimizer steps so
    far, the epoch's validation metrics (`val_loss`, `val_accuracy`, ...: the scalars) and the model.json
    that rebuilds its network (`described`; None: none)."""
    record = state.history[-1] if state.history and state.history[-1].get("epoch") == state.epoch else {}
    val = record.get("val") or {}
    scalar = lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)
    metrics = {f"val_{k}": v for k, v in val.items() if scalar(v)}
    steps_per_epoch = math.ceil(len(setup.train_idx) / setup.spec.batch_size)
    return json_safe({
        "step": state.epoch * steps_per_epoch,
        "metrics": metrics,
        "model_json": described,
    })  # fmt: skip


def _payload(setup: TrainSetup, state: TrainState, elapsed: float) -> dict[str, Any]:
    return {
        "version": CHECKPOINT_VERSION,
        "fingerprint": setup.fingerprint,
        "epoch": state.epoch,
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "schedule": setup.schedule.state_dict() if setup.schedule is not None else None,
        "scaler": setup.scaler.state_dict() if setup.scaler is not None else None,
        "rng": rng_state(),
        "best": state.best,
        "history": state.history,
        "elapsed_s": elapsed,
        "stop_reason": state.stop_reason,
    }


def restore_checkpoint(
    setup: TrainSetup, checkpoints: CheckpointStore | None, hooks: TrainHooks
) -> TrainState:
    """Load the latest checkpoint of this plan into the model, optimizer and RNGs; its state (else a fresh one)."""
    saved = checkpoints.load_latest() if checkpoints is not None else None
    if saved is not None and saved.get("fingerprint") != setup.fingerprint:
        hooks.on_warning("ignoring checkpoints written for a different plan; training from scratch")
        checkpoints.clear()
        saved = None
    if saved is None:
        return TrainState()
    setup.model.load_state_dict(saved["model"])
    setup.optimizer.load_state_dict(saved["optimizer"])
    if setup.schedule is not None:
        setup.schedule.load_state_dict(saved["schedule"])
    if setup.scaler is not None:
        setup.scaler.load_state_dict(saved["scaler"])
    state = TrainState(
        epoch=int(saved["epoch"]),
        history=list(saved["history"]),
        elapsed_before=float(saved["elapsed_s"]),
        stop_reason=saved["stop_reason"] if saved["stop_reason"] != "cancelled" else None,
        best=dict(saved["best"]),
        resumed=True,
    )
    set_rng_state(saved["rng"])
    return state
