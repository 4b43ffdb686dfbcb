"""The training loop: one call trains one job, resuming from its latest checkpoint if there is one.

    plan = TrainPlan(dataset=ds, similarity_spec=None, loss_spec={"kind": "cross_entropy"},
                     model_spec={"kind": "mlp"}, training=with_seed(TrainingSpec(epochs=5)))
    result = train(plan, hooks=NoopHooks(), checkpoints=CheckpointStore(storage, "jobs/1/ckpt"))
    result.model, result.final_metrics, result.stop_reason
    result.final_metrics["evaluated_on"]       # "test" (with a test split / test dataset) or "val"

What happens, top to bottom (`_train`: `_build`, `restore_checkpoint`, `_run_epoch` per epoch, `_finish`):

1. split the (already class-selected) dataset into training / validation (/ test) rows, stratified and
   deterministic for the split seed (core/training/splits.py; a `plan.test_dataset` gives the test rows
   instead); check the augmentation against the data (images only) and the precision against the device;
2. compute standardisation stats on the training split (read in bounded chunks: a memmap is never
   loaded whole); build the model (init from the seed, then `plan.init`'s warm-start weights; on CUDA
   channels_last for image models), the similarity matrix, the loss, the optimizer over the warm-start
   parameter groups, the learning-rate schedule, the fp16 gradient scaler, `torch.compile` when asked,
   and the data feeds: resident on the device when the features fit `plan.data_budget_bytes`, else
   streamed by DataLoader workers (core/training/feed.py);
3. if the checkpoint store has a checkpoint of this same plan, restore everything from it: weights,
   optimizer, schedule, scaler, epoch, RNG states (torch / numpy / python / cuda), early stopping, best
   weights, history, elapsed time. The order of epoch e comes from a generator seeded with (seed, e) and
   each sample's augmentation from a seed of (seed, e, position), so a resumed run makes bit-identical
   updates on CPU;
4. per epoch: shuffle, train on the feed's batches (augmented per sample, autocast per the precision,
   gradients clipped, the schedule stepped), evaluate on the validation split, report, decide whether to
   stop, checkpoint;
5. load the best-by-val-loss weights and evaluate them once more on CPU in float32 (the numbers the
   saved artifacts reproduce); a run trained on CPU in fp32 without compilation reuses that epoch's
   validation logits, which are exactly these (same weights, inputs, chunks and device). With test rows
   the same model is evaluated on them, for the first and only time: `final_metrics` are the test
   split's, with `evaluated_on` = "test" and the validation split's scalar metrics under
   `final_metrics["val"]`; without, they are the validation split's with `evaluated_on` = "val".

Only the validation rows choose anything (early stopping, the best epoch); training and selection never
see a test row.

Stop reasons: "completed", "early_stopped" (patience epochs without a val loss improvement), "max_runtime",
"cancelled" (hooks.should_stop(); its checkpoint is written first). A non-finite training loss raises
TrainingError("non_finite_loss"), running out of memory TrainingError("out_of_memory"), unusable data
TrainingError("data_error").

The pieces live next to this file: `state` (TrainSetup, TrainState, checkpoint save / restore), `steps`
(precision, make_optimizer, train_step, validate, predict), `schedule` (learning-rate schedules),
`augment` (per-sample torchvision v2 augmentation), `feed` and `rows` (resident or streamed data),
`warm` (warm starts), `rng` (seeding, per-epoch order, augmentation seeds, RNG states) and `model_json`
(the saved model's description).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core.checkpoint import CheckpointStore
from core.data.dataset import ArrayDataset
from core.decision_spec import ModelDecision, decision_summary
from core.errors import SpecError, TrainingError
from core.losses import build_loss
from core.metrics import evaluate
from core.models.build import build_model, count_parameters
from core.models.heads import class_logits, probabilities
from core.models.init import InitWeights
from core.models.nets import standardization_stats
from core.models.spec import ModelSpec, parse_model_spec, resolve_kind
from core.similarity import build_similarity
from core.training.augment import Augmenter, check_augment
from core.training.feed import EvalFeed, make_feeds
from core.training.hooks import NoopHooks, TrainHooks
from core.training.model_json import model_json
from core.training.rng import augment_seeds, epoch_order, seed_everything
from core.training.rows import RowReader
from core.training.schedule import build_schedule
from core.training.spec import TrainingSpec, parse_training_spec
from core.training.splits import Splits, make_splits
from core.training.state import TrainSetup, TrainState, fingerprint, restore_checkpoint, save_checkpoint
from core.training.steps import (
    DEVICE_DATA_BUDGET_BYTES,
    epoch_stats,
    loss_value,
    make_optimizer,
    make_scaler,
    predict,
    resolve_precision,
    train_step,
    validate,
)
from core.training.warm import apply_init, freeze_backbone_norms

__all__ = ["DEVICE_DATA_BUDGET_BYTES", "STOP_REASONS", "TrainPlan", "TrainResult", "resolve_device", "train"]

STOP_REASONS = ("completed", "early_stopped", "cancelled", "max_runtime")
_now = time.monotonic  # patched by tests to fake the clock
_STATS_READ_BYTES = 32 << 20  # rows read at a time for the standardisation statistics


@dataclass
class TrainPlan:
    """Everything one training run needs; `training.seed` must be set (see `with_seed`).

    `init`: warm-start weights resolved from `model.init` (by the worker), None for a fresh start.
    `data_budget_bytes`: training + validation features up to this size are kept on the device (host
    memory on CPU); larger ones stream through `loader_workers` DataLoader processes (None: up to 8).
    `test_dataset`: test rows from another dataset in the same classes (order), feature shape and dtype
    (`core.training.splits.align_test_dataset` puts one in the job's classes); None: `training.split`.
    """

    dataset: ArrayDataset
    similarity_spec: dict | None
    loss_spec: dict
    model_spec: dict
    training: TrainingSpec | dict  # a dict is validated with parse_training_spec
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    init: InitWeights | None = None
    data_budget_bytes: int = DEVICE_DATA_BUDGET_BYTES
    loader_workers: int | None = None
    test_dataset: ArrayDataset | None = None
    decision: dict[str, Any] | None = None  # {"rule", "threshold"} (core.decision_spec.decision_of)


@dataclass
class TrainResult:
    model: nn.Module  # CPU, eval mode, best-by-val-loss weights
    model_json: dict[str, Any]
    history: list[dict[str, Any]]
    # evaluate(...) incl. confusion_matrix, plus "loss" and "evaluated_on": on the test rows ("test", the
    # val split's scalar metrics under "val") when there are any, else on the val split ("val")
    final_metrics: dict[str, Any]
    val_indices: np.ndarray  # int64 indices into plan.dataset
    val_targets: np.ndarray  # int64
    val_probs: np.ndarray  # float32 (num_val, C)
    stop_reason: str
    epochs_completed: int
    train_seconds: float
    device: str
    best_epoch: int | None = None  # the epoch whose weights `model` holds (None: no finite val loss)
    train_indices: np.ndarray | None = None  # int64 indices into plan.dataset
    test_indices: np.ndarray | None = None  # int64 rows of the test source (None: no test rows)
    test_targets: np.ndarray | None = None  # int64
    test_probs: np.ndarray | None = None  # float32 (num_test, C)
    test_source: str = "none"  # "split" (rows of plan.dataset), "test_dataset" or "none"
    split_seed: int | None = None

    @property
    def evaluated_on(self) -> str:
        return "val" if self.test_indices is None else "test"


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
    """Build, restore, run the epochs, finish: the module docstring's steps 1-5, top to bottom."""
    setup = _build(plan, spec, device)
    if setup.model_spec.init is not None and plan.init is None:
        hooks.on_warning("model.init names warm-start weights the plan was not given; starting from scratch")
    try:
        state = restore_checkpoint(setup, checkpoints, hooks)
        hooks.on_start(_start_info(setup, state))
        session_start = _now()
        while state.stop_reason is None and state.epoch < spec.epochs:
            _run_epoch(setup, state, hooks, checkpoints, session_start)
        state.stop_reason = state.stop_reason or "completed"
        train_seconds = state.elapsed_before + (_now() - session_start)
    finally:
        setup.train_feed.close()
    return _finish(setup, state, train_seconds)


def _build(plan: TrainPlan, spec: TrainingSpec, device: torch.device) -> TrainSetup:
    """Steps 1 and 2: the split, then model, similarity, loss, optimizer, schedule and the data feeds."""
    ds = plan.dataset
    classes = list(ds.classes)
    loss_spec = _as_dict(plan.loss_spec)
    model_spec = parse_model_spec(_as_dict(plan.model_spec))
    similarity_spec = _as_dict(plan.similarity_spec) if plan.similarity_spec is not None else None
    check_augment(spec.augment, ds.x.dtype, ds.feature_shape)
    amp_dtype = resolve_precision(spec.precision, device)
    splits = make_splits(ds, spec, plan.test_dataset)
    train_idx, val_idx = splits.train, splits.val

    seed_everything(spec.seed)
    model, init_info = _model(plan, model_spec, train_idx, device)
    similarity = build_similarity(similarity_spec, classes) if similarity_spec is not None else None
    loss_fn = build_loss(loss_spec, similarity, classes, similarity_spec=similarity_spec).to(device)
    optimizer = make_optimizer(model, spec, model_spec, device)
    schedule = build_schedule(optimizer, spec, math.ceil(len(train_idx) / spec.batch_size))
    plan_id = fingerprint(ds, similarity_spec, loss_spec, model_spec.model_dump(), spec)

    augmenter = Augmenter(spec.augment, ds.feature_shape) if spec.augment is not None else None
    train_feed, val_feed = make_feeds(
        ds, train_idx, val_idx, batch_size=spec.batch_size, device=device,
        budget_bytes=plan.data_budget_bytes, workers=plan.loader_workers, augmenter=augmenter,
        memory_format=_memory_format(model_spec, ds, device),
    )  # fmt: skip
    y_val_cpu = torch.from_numpy(np.ascontiguousarray(ds.y[val_idx]))
    return TrainSetup(
        spec=spec, device=device, dataset=ds, classes=classes,
        loss_spec=loss_spec, model_spec=model_spec, similarity_spec=similarity_spec, similarity=similarity,
        model=model, forward=torch.compile(model) if spec.compile else model, loss_fn=loss_fn,
        optimizer=optimizer, schedule=schedule, scaler=make_scaler(amp_dtype, device), amp_dtype=amp_dtype,
        fingerprint=plan_id, train_idx=train_idx, val_idx=val_idx,
        train_feed=train_feed, val_feed=val_feed, augmenter=augmenter,
        y_train=train_feed.y, y_val=y_val_cpu.to(device), y_val_cpu=y_val_cpu, init=init_info,
        splits=splits, decision=plan.decision, **_test_rows(plan, splits),
    )  # fmt: skip


def _test_rows(plan: TrainPlan, splits: Splits) -> dict[str, Any]:
    """The test rows' feed (read chunk by chunk on CPU, once, by the final model) and labels."""
    if splits.test is None:
        return {}
    source = plan.test_dataset if splits.test_source == "test_dataset" else plan.dataset
    feed = EvalFeed(RowReader(source.x), splits.test, resident=None)
    return {"test_feed": feed, "y_test_cpu": torch.from_numpy(np.ascontiguousarray(source.y[splits.test]))}


def _model(
    plan: TrainPlan, model_spec: ModelSpec, train_idx: np.ndarray, device: torch.device
) -> tuple[nn.Module, dict[str, Any] | None]:
    """The model (initial weights from the seed, then the warm start), standardised on the training
    split (statistics read in bounded chunks), on `device`; and what the warm start did."""
    ds = plan.dataset
    mean, std = standardization_stats(RowReader(ds.x).chunks(train_idx, _STATS_READ_BYTES))
    model = build_model(model_spec, ds.feature_shape, len(ds.classes), mean=mean, std=std)
    init_info = apply_init(model, plan.init, ds.classes)
    return model.to(device, memory_format=_memory_format(model_spec, ds, device)), init_info


def _memory_format(model_spec: ModelSpec, ds: ArrayDataset, device: torch.device) -> torch.memory_format:
    """channels_last for image models on CUDA (the convolutions' fast layout there), else the default."""
    image_model = len(ds.feature_shape) == 3 and resolve_kind(model_spec, ds.feature_shape) in ("cnn", "timm")
    return torch.channels_last if device.type == "cuda" and image_model else torch.contiguous_format


def _start_info(setup: TrainSetup, state: TrainState) -> dict[str, Any]:
    """What `hooks.on_start` is told."""
    return {
        "device": str(setup.device),
        "resumed_from_epoch": state.epoch if state.resumed else None,
        "num_train": len(setup.train_idx),
        "num_val": len(setup.val_idx),
        "num_test": 0 if setup.splits.test is None else len(setup.splits.test),
        "test_source": setup.splits.test_source,
        "num_classes": len(setup.classes),
        "input_shape": list(setup.dataset.feature_shape),
        "parameters": count_parameters(setup.model),
        "epochs": setup.spec.epochs,
        "precision": str(setup.amp_dtype).removeprefix("torch.") if setup.amp_dtype else "float32",
        "data": "streaming" if setup.train_feed.streaming else "resident",
        "augment": setup.spec.augment.model_dump() if setup.spec.augment is not None else None,
        "init": setup.init,
    }


# ---------------------------------------------------------------------------------------------------------
# step 4: one epoch


def _run_epoch(
    setup: TrainSetup,
    state: TrainState,
    hooks: TrainHooks,
    checkpoints: CheckpointStore | None,
    session_start: float,
) -> None:
    """Train one epoch, validate, record, keep the best weights, decide whether to stop, checkpoint."""
    spec = setup.spec
    state.epoch += 1
    t0 = _now()
    lr = float(setup.optimizer.param_groups[0]["lr"])  # the head's, as the epoch starts
    train_stats = _train_one_epoch(setup, state.epoch)
    if setup.schedule is not None:
        setup.schedule.after_epoch()
    train_s = _now() - t0
    val_logits, val = validate(setup)
    record = {
        "epoch": state.epoch,
        "train": train_stats,
        "val": val,
        "lr": lr,
        "seconds": _now() - t0,
        "samples_per_s": len(setup.train_idx) / max(train_s, 1e-9),
    }
    state.history.append(record)
    state.update_best(val["loss"], setup.model)
    if _val_pass_is_final(setup) and state.best["epoch"] == state.epoch:
        state.best_val_logits = (state.epoch, val_logits)  # what step 5 would compute again: same weights
    hooks.on_epoch(state.epoch, spec.epochs, record)

    elapsed = state.elapsed_before + (_now() - session_start)
    state.stop_reason = _stop_reason(spec, state, elapsed, hooks)
    due = state.stop_reason is not None or state.epoch % spec.checkpoint_every == 0
    if checkpoints is not None and due:
        save_checkpoint(checkpoints, setup, state, elapsed, model_json(setup, state))  # its model.json too
        hooks.on_checkpoint(state.epoch)


def _train_one_epoch(setup: TrainSetup, epoch: int) -> dict[str, float]:
    """One pass over the training split in a (seed, epoch)-determined order (each sample augmented under
    its (seed, epoch, position) seed); mean loss and accuracy.

    The per-batch bookkeeping costs two ops into preallocated buffers (the batch loss, an argmax): the
    losses are read once an epoch, the accuracy is one comparison per epoch. (Keeping each batch's 0-d
    loss tensor until the epoch's end fragmented the heap: the streaming path's RSS grew ~420 MiB over
    1,843 batches; docs/benchmarks.md, "Dataset budget".) Same numbers as
    accumulating per batch (each batch sum is still loss * batch size in float32), fewer kernel launches
    and dispatcher calls per step (see docs/benchmarks.md, "Engine overhead").
    """
    setup.model.train()
    if setup.model_spec.freeze == "backbone":
        freeze_backbone_norms(setup.model)
    device, bs, n = setup.device, setup.spec.batch_size, len(setup.train_idx)
    order = epoch_order(n, setup.spec.seed, epoch)
    seeds = augment_seeds(n, setup.spec.seed, epoch) if setup.augmenter is not None else None
    head = setup.model_spec.head
    losses = torch.empty(-(-n // bs), dtype=torch.float32, device=device)  # batch means, read once an epoch
    preds = torch.empty(n, dtype=torch.long, device=device)  # predicted class of every sample, in order
    for b, (xb, yb) in enumerate(setup.train_feed.batches(order, seeds)):
        loss, logits = train_step(setup, xb, yb)
        losses[b] = loss
        torch.argmax(class_logits(logits, head), dim=1, out=preds[b * bs : (b + 1) * bs])
    targets = setup.y_train.index_select(0, order.to(setup.y_train.device)).to(device)
    return epoch_stats(losses[: b + 1], preds, targets, bs, epoch)


def _val_pass_is_final(setup: TrainSetup) -> bool:
    """Whether the validation pass computes what step 5 would (CPU, fp32, the model itself)."""
    return setup.device.type == "cpu" and setup.amp_dtype is None and setup.forward is setup.model


def _stop_reason(spec: TrainingSpec, state: TrainState, elapsed: float, hooks: TrainHooks) -> str | None:
    """Why the run stops after this epoch, in priority order; None to go on."""
    if spec.patience is not None and state.best["bad_epochs"] >= spec.patience:
        return "early_stopped"
    if state.epoch >= spec.epochs:
        return "completed"
    if spec.max_runtime_s is not None and elapsed >= spec.max_runtime_s:
        return "max_runtime"
    if hooks.should_stop():
        return "cancelled"
    return None


# ---------------------------------------------------------------------------------------------------------
# step 5: the final model


def _finish(setup: TrainSetup, state: TrainState, train_seconds: float) -> TrainResult:
    """Load the best weights, move the model to CPU and evaluate it there in float32: on the validation
    split, then (when there are test rows) on the test rows, which only this model ever sees."""
    best = state.best
    if best["model"] is not None:
        setup.model.load_state_dict(best["model"])
    model = setup.model.to("cpu", memory_format=torch.contiguous_format).eval()
    cpu_logits = state.best_val_logits
    if cpu_logits is not None and cpu_logits[0] == best["epoch"]:
        final_logits = cpu_logits[1]  # trained on CPU: the best epoch's validation pass, bit for bit
    else:
        final_logits = predict(model, setup.val_feed, setup.spec.batch_size, torch.device("cpu"))
    final_metrics, test = _final_metrics(setup, final_logits, setup.y_val_cpu), {}
    if setup.splits.test is not None:
        final_metrics, test = _on_test_rows(setup, model, final_metrics)
    final_metrics["evaluated_on"] = setup.splits.evaluated_on
    return TrainResult(
        model=model,
        model_json=model_json(setup, state),
        history=state.history,
        final_metrics=final_metrics,
        val_indices=setup.val_idx,
        val_targets=setup.dataset.y[setup.val_idx].copy(),
        val_probs=_probs(setup, final_logits),
        stop_reason=state.stop_reason,
        epochs_completed=state.epoch,
        train_seconds=train_seconds,
        device=str(setup.device),
        best_epoch=best["epoch"],
        train_indices=setup.train_idx,
        test_source=setup.splits.test_source,
        split_seed=setup.splits.seed,
        **test,
    )


def _on_test_rows(
    setup: TrainSetup, model: nn.Module, val_metrics: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The final model on the test rows: (final metrics: the test rows' with the validation split's
    scalar metrics under "val", the TrainResult's test_* fields)."""
    logits = predict(model, setup.test_feed, setup.spec.batch_size, torch.device("cpu"))
    val = {k: v for k, v in val_metrics.items() if k != "confusion_matrix"}
    metrics = {**_final_metrics(setup, logits, setup.y_test_cpu), "val": val}
    rows = {
        "test_indices": setup.splits.test,
        "test_targets": setup.y_test_cpu.numpy().copy(),
        "test_probs": _probs(setup, logits),
    }
    return metrics, rows


def _final_metrics(setup: TrainSetup, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """`core.metrics.evaluate` of CPU logits (confusion matrix included), plus the loss and, when the job
    names one, its decision rule's row (coral / corn outputs are turned into class logits first)."""
    decision = setup.decision or {"rule": "argmax", "threshold": 0.5}
    metrics = evaluate(
        class_logits(logits, setup.model_spec.head), targets, setup.similarity, setup.classes,
        similarity_spec=setup.similarity_spec, decision_threshold=decision["threshold"],
    )  # fmt: skip
    metrics["loss"] = loss_value(setup.loss_fn, logits, targets)
    if setup.decision is not None:
        metrics["decision"] = _decision_metrics(setup, metrics, logits, targets)
    return metrics


def _decision_metrics(
    setup: TrainSetup, metrics: dict[str, Any], logits: torch.Tensor, targets: torch.Tensor
) -> dict[str, Any]:
    """The job's rule and threshold with its row of `metrics["decisions"]`; where evaluate() has no row
    for it (an ordinal head without an ordinal spec), the accuracy of the rule's own predictions."""
    summary = decision_summary(metrics, setup.decision)
    if "accuracy" not in summary:
        decide = ModelDecision.from_model_json({
            "architecture": {"head": setup.model_spec.head}, "decision": setup.decision,
            "classes": setup.classes, "similarity": setup.similarity_spec,
        })  # fmt: skip
        pred = decide(logits)[1]
        summary["accuracy"] = float((pred == targets.cpu()).double().mean()) if len(targets) else None
    return summary


def _probs(setup: TrainSetup, logits: torch.Tensor) -> np.ndarray:
    return probabilities(logits, setup.model_spec.head).numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# devices and specs


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


def _as_dict(spec: Any) -> Any:
    if hasattr(spec, "model_dump"):
        return spec.model_dump(mode="json")
    return spec


def _free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
