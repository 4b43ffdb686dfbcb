"""The engine's building blocks: the optimizer, one training step, an epoch's numbers, prediction, validation.

    optimizer = make_optimizer(model, spec, device)
    loss, logits = train_step(setup, xb, yb)                # one batch: forward, backward, optimizer step
    stats = epoch_stats(losses, preds, targets, batch_size, epoch)
    logits, metrics = validate(setup)                       # the validation split, metrics without the matrix

These are the places to extend the engine: a scheduler or gradient clipping goes into `train_step` (and
`make_optimizer`), another precision into `autocast`, data loading next to `device_tensors`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import TrainingError
from core.metrics import evaluate
from core.training.spec import TrainingSpec
from core.training.state import TrainSetup

__all__ = [
    "DEVICE_DATA_BUDGET_BYTES",
    "autocast",
    "device_tensors",
    "epoch_stats",
    "loss_value",
    "make_optimizer",
    "predict",
    "train_step",
    "validate",
]

DEVICE_DATA_BUDGET_BYTES = 2 << 30  # larger training sets stay in (pinned) host memory
_CPU_PREDICT_CHUNK = 256  # rows per forward pass when predicting on CPU (see predict)


def make_optimizer(model: nn.Module, spec: TrainingSpec, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer of the spec; on CUDA its fused implementation (one kernel per step instead of one
    multi-tensor launch per update term: the step at batch size 64 is launch-bound)."""
    params = model.parameters()
    fused = True if device.type == "cuda" else None
    if spec.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=spec.learning_rate, momentum=spec.momentum, weight_decay=spec.weight_decay, fused=fused
        )
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.learning_rate, weight_decay=spec.weight_decay, fused=fused)
    return torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay, fused=fused)


def device_tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y as tensors on `device` (pinned host memory when too large for the device budget)."""
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    if device.type != "cuda":
        return xt, yt
    xt, yt = xt.pin_memory(), yt.pin_memory()
    if xt.nbytes + yt.nbytes > DEVICE_DATA_BUDGET_BYTES:
        return xt, yt
    return xt.to(device, non_blocking=True), yt.to(device, non_blocking=True)


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(setup: TrainSetup, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch already on the device; (the batch's mean loss, its logits), detached."""
    with autocast(setup.device):
        logits = setup.model(xb)
    loss = setup.loss_fn(logits.float(), yb)
    setup.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    setup.optimizer.step()
    return loss.detach(), logits.detach()


def epoch_stats(
    losses: list[torch.Tensor], preds: torch.Tensor, targets: torch.Tensor, batch_size: int, epoch: int
) -> dict[str, float]:
    """Mean loss and accuracy of an epoch from its batch mean losses (0-d) and every sample's prediction.

    Each batch counts loss * its size in float32, as accumulating per batch would; a non-finite batch
    loss raises TrainingError("non_finite_loss") naming the epoch and the first such batch."""
    n, num_batches = len(targets), len(losses)
    batch_losses = torch.stack(losses).cpu()  # the epoch's one device sync
    sums = torch.empty(num_batches, dtype=torch.float32)  # loss * len(batch), as float32, per batch
    sums[:-1] = batch_losses[:-1] * batch_size
    sums[-1] = batch_losses[-1] * (n - (num_batches - 1) * batch_size)
    correct = (preds == targets).sum()
    finite = torch.isfinite(sums)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0]) + 1
        raise TrainingError(
            "non_finite_loss",
            f"the training loss became non-finite at epoch {epoch} batch {bad}; try a lower learning rate",
        )
    return {"loss": float(sums.sum()) / n, "accuracy": int(correct) / n}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    """Logits (float32, on CPU) for all of x, in eval mode, batched.

    On CPU in chunks of 256 rows: larger chunks push conv activations out of the caches (a CNN's
    forward pass over 1024 rows took ~1.7x as long per row as over 256); the logits were bit-identical
    across chunk sizes for every model checked (docs/benchmarks.md, "Engine overhead").
    """
    model.eval()
    chunk = min(max(batch_size, 1024), 16384) if device.type == "cuda" else _CPU_PREDICT_CHUNK
    outputs = []
    for start in range(0, len(x), chunk):
        xb = x[start : start + chunk].to(device, non_blocking=True)
        with autocast(device):
            outputs.append(model(xb).float().cpu())
    return torch.cat(outputs)


def validate(setup: TrainSetup) -> tuple[torch.Tensor, dict[str, Any]]:
    """The validation split's logits (CPU) and metrics: `core.metrics.evaluate` without the confusion
    matrix, plus "loss"."""
    logits = predict(setup.model, setup.x_val, setup.spec.batch_size, setup.device)
    metrics = evaluate(
        logits, setup.y_val_cpu, setup.similarity, setup.classes, similarity_spec=setup.similarity_spec
    )
    metrics.pop("confusion_matrix", None)
    metrics["loss"] = loss_value(setup.loss_fn, logits, setup.y_val)
    return logits, metrics


@torch.no_grad()
def loss_value(loss_fn: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean loss, computed wherever the loss module lives."""
    where = next((t.device for t in [*loss_fn.parameters(), *loss_fn.buffers()]), targets.device)
    return float(loss_fn(logits.to(where), targets.to(where)))
