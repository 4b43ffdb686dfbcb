"""The engine's building blocks: precision, the optimizer, one training step, an epoch's numbers, prediction,
validation.

    amp = resolve_precision("auto", device)                 # None (fp32) | torch.bfloat16 | torch.float16
    optimizer = make_optimizer(model, spec, model_spec, device)   # core.models.init.param_groups
    loss, logits = train_step(setup, xb, yb)                # one batch: forward, backward, clip, step
    stats = epoch_stats(losses, preds, targets, batch_size, epoch)
    logits = predict(forward, val_feed, batch_size, device, amp)
    logits, metrics = validate(setup)                       # the validation split, metrics without the matrix

Precision "auto" is bf16 autocast on a CUDA device that supports it and fp32 elsewhere; "fp16" scales
the loss with a `torch.amp.GradScaler` (kept in `setup.scaler`, saved in the checkpoint). Gradient
clipping (`grad_clip_norm`) clips the unscaled gradients; a per-step schedule advances after each
optimizer step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from core.errors import SpecError, TrainingError
from core.metrics import evaluate
from core.models.heads import class_logits
from core.models.init import param_groups
from core.models.spec import ModelSpec
from core.training.feed import EvalFeed
from core.training.spec import TrainingSpec
from core.training.state import TrainSetup

__all__ = [
    "DEVICE_DATA_BUDGET_BYTES",
    "autocast",
    "epoch_stats",
    "loss_value",
    "make_optimizer",
    "make_scaler",
    "predict",
    "resolve_precision",
    "train_step",
    "validate",
]

DEVICE_DATA_BUDGET_BYTES = 2 << 30  # larger training + validation sets stream through a DataLoader
_CPU_PREDICT_CHUNK = 256  # rows per forward pass when predicting on CPU (see predict)
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None: fp32); SpecError where it cannot run."""
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise SpecError("training.precision", f"{torch.cuda.get_device_name(device)} does not support bf16")
    return _AMP_DTYPES[precision]


def make_optimizer(
    model: nn.Module, spec: TrainingSpec, model_spec: ModelSpec, device: torch.device
) -> torch.optim.Optimizer:
    """The optimizer of the spec over `param_groups` (head at lr, backbone at lr * backbone_lr_factor, or
    frozen); on CUDA its fused implementation (one kernel per step instead of one multi-tensor launch
    per update term: the step at batch size 64 is launch-bound)."""
    groups = param_groups(
        model,
        freeze=model_spec.freeze,
        backbone_lr_factor=model_spec.backbone_lr_factor,
        lr=spec.learning_rate,
    )
    fused = True if device.type == "cuda" else None
    lr, wd = spec.learning_rate, spec.weight_decay
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=spec.momentum, weight_decay=wd, fused=fused)
    if spec.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=wd, fused=fused)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=wd, fused=fused)


def make_scaler(amp_dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 autocast, else None."""
    return torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None


def autocast(device: torch.device, amp_dtype: torch.dtype | None = None):
    """Autocast to `amp_dtype` on `device`; nothing for fp32 (None)."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def train_step(setup: TrainSetup, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch already on the device; (the batch's mean loss, its logits), detached."""
    with autocast(setup.device, setup.amp_dtype):
        logits = setup.forward(xb)
    loss = setup.loss_fn(logits.float(), yb)
    optimizer, scaler, clip = setup.optimizer, setup.scaler, setup.spec.grad_clip_norm
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(setup.trainable, clip)
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        if clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(setup.trainable, clip)
        scaler.step(optimizer)
        scaler.update()
    if setup.schedule is not None:
        setup.schedule.after_step()
    return loss.detach(), logits.detach()


def epoch_stats(
    losses: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor, batch_size: int, epoch: int
) -> dict[str, float]:
    """Mean loss and accuracy of an epoch from its batch mean losses (one per batch, float32) and every
    sample's prediction.

    Each batch counts loss * its size in float32, as accumulating per batch would; a non-finite batch
    loss raises TrainingError("non_finite_loss") naming the epoch and the first such batch."""
    n, num_batches = len(targets), len(losses)
    batch_losses = losses.float().cpu()  # the epoch's one device sync
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
def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    feed: EvalFeed,
    batch_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Logits (float32, on CPU) for every row of `feed`, batched; the caller puts the model in eval mode.

    On CPU in chunks of 256 rows: larger chunks push conv activations out of the caches (a CNN's
    forward pass over 1024 rows took ~1.7x as long per row as over 256); the logits were bit-identical
    across chunk sizes for every model checked (docs/benchmarks.md, "Engine overhead").
    """
    chunk = min(max(batch_size, 1024), 16384) if device.type == "cuda" else _CPU_PREDICT_CHUNK
    outputs = []
    for xb in feed.chunks(chunk, device):
        with autocast(device, amp_dtype):
            outputs.append(forward(xb).float().cpu())
    return torch.cat(outputs)


def validate(setup: TrainSetup) -> tuple[torch.Tensor, dict[str, Any]]:
    """The validation split's logits (CPU) and metrics: `core.metrics.evaluate` without the confusion
    matrix, plus "loss"."""
    setup.model.eval()
    logits = predict(setup.forward, setup.val_feed, setup.spec.batch_size, setup.device, setup.amp_dtype)
    metrics = evaluate(
        class_logits(logits, setup.model_spec.head),  # coral / corn: C - 1 outputs -> C class logits
        setup.y_val_cpu, setup.similarity, setup.classes, similarity_spec=setup.similarity_spec,
    )  # fmt: skip
    metrics.pop("confusion_matrix", None)
    metrics["loss"] = loss_value(setup.loss_fn, logits, setup.y_val)
    return logits, metrics


@torch.no_grad()
def loss_value(loss_fn: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean loss, computed wherever the loss module lives."""
    where = next((t.device for t in [*loss_fn.parameters(), *loss_fn.buffers()]), targets.device)
    return float(loss_fn(logits.to(where), targets.to(where)))
