"""The training loop: one call trains one job, resuming from its latest checkpoint if there is one.

    plan = TrainPlan(dataset=ds, similarity_spec=None, loss_spec={"kind": "cross_entropy"},
                     model_spec={"kind": "mlp"}, training=with_seed(TrainingSpec(epochs=5)))
    result = train(plan, hooks=NoopHooks(), checkpoints=CheckpointStore(storage, "jobs/1/ckpt"))
    result.model, result.final_metrics, result.stop_reason

What happens, top to bottom (see `train`):

1. split the (already class-selected) dataset, stratified and deterministic for the seed;
2. compute standardisation stats on the training split; build the model (init from the seed), the
   similarity matrix, the loss and the optimizer;
3. if the checkpoint store has a checkpoint of this same plan, restore everything from it: weights,
   optimizer, epoch, RNG states (torch / numpy / python / cuda), early stopping, best weights, history,
   elapsed time. The order of epoch e comes from a generator seeded with (seed, e), so a resumed run
   makes bit-identical updates on CPU;
4. per epoch: shuffle, train on batches sliced from tensors that already live on the device (bf16
   autocast on CUDA), evaluate on the validation split, report, decide whether to stop, checkpoint;
5. load the best-by-val-loss weights and evaluate them once more on CPU in float32 (the numbers the
   saved artifacts reproduce); a run trained on CPU reuses that epoch's validation logits, which are
   exactly these (same weights, inputs, chunks and device).

Stop reasons: "completed", "early_stopped" (patience epochs without a val loss improvement), "max_runtime",
"cancelled" (hooks.should_stop(); its checkpoint is written first). A non-finite training loss raises
TrainingError("non_finite_loss"), running out of memory TrainingError("out_of_memory"), unusable data
TrainingError("data_error").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.checkpoint import CheckpointStore
from core.data.dataset import ArrayDataset, check_trainable, stratified_split
from core.errors import DatasetError, SpecError, TrainingError
from core.losses import build_loss
from core.metrics import evaluate
from core.models.build import MODEL_FORMAT_VERSION, architecture_json, build_model, count_parameters
from core.models.nets import standardization_stats, stats_shape
from core.models.spec import parse_model_spec
from core.similarity import build_similarity
from core.training.hooks import NoopHooks, TrainHooks
from core.training.spec import TrainingSpec, parse_training_spec

__all__ = ["DEVICE_DATA_BUDGET_BYTES", "STOP_REASONS", "TrainPlan", "TrainResult", "resolve_device", "train"]

STOP_REASONS = ("completed", "early_stopped", "cancelled", "max_runtime")
DEVICE_DATA_BUDGET_BYTES = 2 << 30  # larger training sets stay in (pinned) host memory
CHECKPOINT_VERSION = 1
_now = time.monotonic  # patched by tests to fake the clock
_CPU_PREDICT_CHUNK = 256  # rows per forward pass when predicting on CPU (see _predict)


@dataclass
class TrainPlan:
    """Everything one training run needs; `training.seed` must be set (see `with_seed`)."""

    dataset: ArrayDataset
    similarity_spec: dict | None
    loss_spec: dict
    model_spec: dict
    training: TrainingSpec | dict  # a dict is validated with parse_training_spec
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"


@dataclass
class TrainResult:
    model: nn.Module  # CPU, eval mode, best-by-val-loss weights
    model_json: dict[str, Any]
    history: list[dict[str, Any]]
    final_metrics: dict[str, Any]  # evaluate(...) on the val split incl. confusion_matrix, plus "loss"
    val_indices: np.ndarray  # int64 indices into plan.dataset
    val_targets: np.ndarray  # int64
    val_probs: np.ndarray  # float32 (num_val, C)
    stop_reason: str
    epochs_completed: int
    train_seconds: float
    device: str
    best_epoch: int | None = None  # the epoch whose weights `model` holds (None: no finite val loss)


def train(
    plan: TrainPlan, hooks: TrainHooks | None = None, checkpoints: CheckpointStore | None = None
) -> TrainResult:
    """Train (or resume) `plan`; see the module docstring."""
    hooks = hooks if hooks is not None else NoopHooks()
    spec = parse_training_spec(plan.training)
    if spec.seed is None:
        raise SpecError("training.seed", "the engine needs a concrete seed (use with_seed)")
    device = resolve_device(plan.device, hooks)
    try:
        return _train(plan, spec, hooks, checkpoints, device)
    except (torch.OutOfMemoryError, MemoryError) as e:
        _free_device_memory(device)
        raise TrainingError(
            "out_of_memory", f"out of memory on {device}; try a smaller batch size or model"
        ) from e
    except RuntimeError as e:
        if "can't allocate memory" in str(e) or "out of memory" in str(e):
            _free_device_memory(device)
            raise TrainingError("out_of_memory", f"out of memory on {device}: {e}") from e
        raise


def _train(
    plan: TrainPlan,
    spec: TrainingSpec,
    hooks: TrainHooks,
    checkpoints: CheckpointStore | None,
    device: torch.device,
) -> TrainResult:
    ds = plan.dataset
    classes = list(ds.classes)
    loss_spec = _as_dict(plan.loss_spec)
    model_spec = parse_model_spec(_as_dict(plan.model_spec))
    similarity_spec = _as_dict(plan.similarity_spec) if plan.similarity_spec is not None else None

    # 1. the split
    try:
        check_trainable(ds)
    except DatasetError as e:
        raise TrainingError("data_error", e.message) from e
    train_idx, val_idx = stratified_split(ds.y, spec.val_fraction, spec.seed)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise TrainingError("data_error", "the dataset is too small to split into training and validation")

    # 2. model, loss, optimizer (the model's initial weights come from the seed)
    _seed_everything(spec.seed)
    mean, std = standardization_stats(ds.x[train_idx])
    model = build_model(model_spec, ds.feature_shape, len(classes), mean=mean, std=std).to(device)
    similarity = build_similarity(similarity_spec, classes) if similarity_spec is not None else None
    loss_fn = build_loss(loss_spec, similarity, classes, similarity_spec=similarity_spec).to(device)
    optimizer = _make_optimizer(model, spec, device)
    fingerprint = _fingerprint(ds, similarity_spec, loss_spec, model_spec.model_dump(), spec)

    x_train, y_train = _tensors(ds.x[train_idx], ds.y[train_idx], device)
    x_val, y_val = _tensors(ds.x[val_idx], ds.y[val_idx], device)
    y_val_cpu = torch.from_numpy(ds.y[val_idx])

    # 3. resume
    epoch, history, elapsed_before, stop_reason = 0, [], 0.0, None
    best: dict[str, Any] = {"loss": math.inf, "epoch": None, "bad_epochs": 0, "model": None}
    state = checkpoints.load_latest() if checkpoints is not None else None
    if state is not None and state.get("fingerprint") != fingerprint:
        hooks.on_warning("ignoring checkpoints written for a different plan; training from scratch")
        checkpoints.clear()
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        epoch, history, elapsed_before = (
            int(state["epoch"]),
            list(state["history"]),
            float(state["elapsed_s"]),
        )
        best = dict(state["best"])
        stop_reason = state["stop_reason"] if state["stop_reason"] != "cancelled" else None
        _set_rng_state(state["rng"])

    hooks.on_start(
        {
            "device": str(device),
            "resumed_from_epoch": epoch if state is not None else None,
            "num_train": len(train_idx),
            "num_val": len(val_idx),
            "num_classes": len(classes),
            "input_shape": list(ds.feature_shape),
            "parameters": count_parameters(model),
            "epochs": spec.epochs,
        }
    )

    # 4. the epochs
    best_val_logits: tuple[int, torch.Tensor] | None = None
    session_start = _now()
    while stop_reason is None and epoch < spec.epochs:
        epoch += 1
        t0 = _now()
        train_stats = _train_one_epoch(model, loss_fn, optimizer, x_train, y_train, spec, epoch, device)
        train_s = _now() - t0
        val_logits = _predict(model, x_val, spec.batch_size, device)
        val = _val_record(val_logits, y_val, y_val_cpu, loss_fn, similarity, classes, similarity_spec)
        record = {
            "epoch": epoch,
            "train": train_stats,
            "val": val,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": _now() - t0,
            "samples_per_s": len(train_idx) / max(train_s, 1e-9),
        }
        history.append(record)
        _update_best(best, val["loss"], epoch, model)
        if device.type == "cpu" and best["epoch"] == epoch:
            best_val_logits = (epoch, val_logits)  # what step 5 would compute again: same weights, input, device
        hooks.on_epoch(epoch, spec.epochs, record)

        elapsed = elapsed_before + (_now() - session_start)
        if spec.patience is not None and best["bad_epochs"] >= spec.patience:
            stop_reason = "early_stopped"
        elif epoch >= spec.epochs:
            stop_reason = "completed"
        elif spec.max_runtime_s is not None and elapsed >= spec.max_runtime_s:
            stop_reason = "max_runtime"
        elif hooks.should_stop():
            stop_reason = "cancelled"

        if checkpoints is not None and (stop_reason is not None or epoch % spec.checkpoint_every == 0):
            state = {
                "version": CHECKPOINT_VERSION,
                "fingerprint": fingerprint,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": _rng_state(),
                "best": best,
                "history": history,
                "elapsed_s": elapsed,
                "stop_reason": stop_reason,
            }
            checkpoints.save(epoch, state)
            hooks.on_checkpoint(epoch)
    stop_reason = stop_reason or "completed"
    train_seconds = elapsed_before + (_now() - session_start)

    # 5. the final model: best weights, evaluated on CPU in float32
    if best["model"] is not None:
        model.load_state_dict(best["model"])
    model = model.to("cpu").eval()
    if best_val_logits is not None and best_val_logits[0] == best["epoch"]:
        final_logits = best_val_logits[1]  # trained on CPU: the best epoch's validation pass, bit for bit
    else:
        final_logits = _predict(model, torch.from_numpy(ds.x[val_idx]), spec.batch_size, torch.device("cpu"))
    final_metrics = evaluate(final_logits, y_val_cpu, similarity, classes, similarity_spec=similarity_spec)
    final_metrics["loss"] = _loss_value(loss_fn, final_logits, y_val_cpu)

    model_json = {
        "format": "simtrain.model",
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": architecture_json(model_spec, ds.feature_shape, len(classes)),
        "model_spec": model_spec.model_dump(mode="json"),
        "classes": classes,
        "similarity": similarity_spec,
        "loss": loss_spec,
        "preprocessing": {
            "kind": "standardize",
            "inside_model": True,
            "formula": "(x - mean) / std",
            "per": "channel" if len(ds.feature_shape) == 3 else "feature",
            "stats_shape": list(stats_shape(ds.feature_shape)),
            "computed_on": "training split",
            "buffers": ["standardize.mean", "standardize.std"],
        },
        "input": {"name": "x", "dtype": "float32", "shape": ["batch", *ds.feature_shape]},
        "output": {"name": "logits", "dtype": "float32", "shape": ["batch", len(classes)]},
        "training": spec.model_dump(mode="json"),
        "seed": spec.seed,
        "best_epoch": best["epoch"],
        "epochs_completed": epoch,
        "stop_reason": stop_reason,
    }
    return TrainResult(
        model=model,
        model_json=model_json,
        history=history,
        final_metrics=final_metrics,
        val_indices=val_idx,
        val_targets=ds.y[val_idx].copy(),
        val_probs=torch.softmax(final_logits, dim=1).numpy().astype(np.float32),
        stop_reason=stop_reason,
        epochs_completed=epoch,
        train_seconds=train_seconds,
        device=str(device),
        best_epoch=best["epoch"],
    )


# ---------------------------------------------------------------------------------------------------------
# one epoch, prediction, validation record


def _train_one_epoch(
    model: nn.Module,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    spec: TrainingSpec,
    epoch: int,
    device: torch.device,
) -> dict[str, float]:
    """One pass over the training split in a (seed, epoch)-determined order; mean loss and accuracy.

    The per-batch bookkeeping costs one op (an argmax into a preallocated buffer): the batch losses are
    kept as 0-d tensors and stacked once, the accuracy is one comparison per epoch. Same numbers as
    accumulating per batch (each batch sum is still loss * batch size in float32), fewer kernel launches
    and dispatcher calls per step (see docs/benchmarks.md, "Engine overhead").
    """
    model.train()
    n, bs = len(y), spec.batch_size
    order = torch.randperm(n, generator=torch.Generator().manual_seed(_epoch_seed(spec.seed, epoch)))
    order = order.to(x.device)
    num_batches = math.ceil(n / bs)
    # small data sets live on the device: no copy per batch ("cuda" without an index means the current one)
    on_device = x.device.type == device.type and device.index in (None, x.device.index)
    losses: list[torch.Tensor] = []  # batch means (0-d, on the device), stacked once per epoch
    preds = torch.empty(n, dtype=torch.long, device=device)  # predicted class of every sample, in order
    for b in range(num_batches):
        idx = order[b * bs : (b + 1) * bs]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        if not on_device:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with _autocast(device):
            logits = model(xb)
        loss = loss_fn(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        torch.argmax(logits.detach(), dim=1, out=preds[b * bs : (b + 1) * bs])

    batch_losses = torch.stack(losses).cpu()  # the epoch's one device sync
    sums = torch.empty(num_batches, dtype=torch.float32)  # loss * len(batch), as float32, per batch
    sums[:-1] = batch_losses[:-1] * bs
    sums[-1] = batch_losses[-1] * (n - (num_batches - 1) * bs)
    targets = y.index_select(0, order)
    correct = (preds == (targets if on_device else targets.to(device))).sum()
    finite = torch.isfinite(sums)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0]) + 1
        raise TrainingError(
            "non_finite_loss",
            f"the training loss became non-finite at epoch {epoch} batch {bad}; try a lower learning rate",
        )
    return {"loss": float(sums.sum()) / n, "accuracy": int(correct) / n}


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
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
        with _autocast(device):
            outputs.append(model(xb).float().cpu())
    return torch.cat(outputs)


def _val_record(logits, y_val, y_val_cpu, loss_fn, similarity, classes, similarity_spec) -> dict[str, Any]:
    metrics = evaluate(logits, y_val_cpu, similarity, classes, similarity_spec=similarity_spec)
    metrics.pop("confusion_matrix", None)
    metrics["loss"] = _loss_value(loss_fn, logits, y_val)
    return metrics


@torch.no_grad()
def _loss_value(loss_fn: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean loss, computed wherever the loss module lives."""
    where = next((t.device for t in [*loss_fn.parameters(), *loss_fn.buffers()]), targets.device)
    return float(loss_fn(logits.to(where), targets.to(where)))


def _update_best(best: dict[str, Any], val_loss: float, epoch: int, model: nn.Module) -> None:
    if math.isfinite(val_loss) and val_loss < best["loss"]:
        best.update(
            loss=val_loss,
            epoch=epoch,
            bad_epochs=0,
            model={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        )
    else:
        best["bad_epochs"] += 1


# ---------------------------------------------------------------------------------------------------------
# setup helpers


def resolve_device(name: str, hooks: TrainHooks | None = None) -> torch.device:
    """ "auto" -> cuda when available else cpu; cuda without a GPU falls back to cpu with a warning."""
    warn = hooks.on_warning if hooks is not None else (lambda message: None)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            warn(f"device {name!r} requested but CUDA is not available; training on cpu")
            return torch.device("cpu")
        index = int(name[5:]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            warn(f"device {name!r} does not exist; using cuda:0")
            index = 0
        return torch.device("cuda", index)
    raise SpecError("device", f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def _make_optimizer(model: nn.Module, spec: TrainingSpec, device: torch.device) -> torch.optim.Optimizer:
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


def _tensors(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """x, y as tensors on `device` (pinned host memory when too large for the device budget)."""
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))
    if device.type != "cuda":
        return xt, yt
    xt, yt = xt.pin_memory(), yt.pin_memory()
    if xt.nbytes + yt.nbytes > DEVICE_DATA_BUDGET_BYTES:
        return xt, yt
    return xt.to(device, non_blocking=True), yt.to(device, non_blocking=True)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rng_state() -> dict[str, Any]:
    """All global RNG states, in a form `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    keys = np_state["keys"].numpy().astype(np.uint32)
    np.random.set_state((np_state["kind"], keys, np_state["pos"], np_state["has_gauss"], np_state["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))


def _fingerprint(ds: ArrayDataset, similarity_spec, loss_spec, model_spec, spec: TrainingSpec) -> str:
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
    h.update(json.dumps(description, sort_keys=True, default=str).encode())
    h.update(ds.y.tobytes())
    return h.hexdigest()


def _as_dict(spec: Any) -> Any:
    if hasattr(spec, "model_dump"):
        return spec.model_dump(mode="json")
    return spec


def _free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
