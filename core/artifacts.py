"""Write a finished run's artifacts to a directory, and rebuild the model from them.

    paths = write_artifacts(result, Path("out"))
    model, model_json = load_model_from_artifacts(Path("out"))     # needs only the first two files

Files:

- `model.safetensors`  the state dict (weights and the standardisation buffers)
- `model.json`         architecture, classes, similarity / loss / training specs, seed, preprocessing
- `model.onnx`         the same network (preprocessing included), input "x" (uint8 for images stored as
                       uint8, else float32) -> output "logits" (N, C), dynamic batch; softmax("logits")
                       is the class probabilities (an ordinal head's export ends in the conversion:
                       "logits" are its per-class log-probabilities, core/models/heads.py)
- `metrics.json`       final metrics (`evaluated_on`: "test", the validation split's under `final.val`,
                       or "val"), per-epoch history, stop reason, timing, the split's sizes and seed
- `predictions.npz`    val `indices`, `targets`, `probs` (and `classes`); with test rows also
                       `test_indices`, `test_targets`, `test_probs` and `test_source`
- `splits.npz`         the row indices of the run: `train`, `val` (into the dataset), `test` (into
                       `test_source`'s rows: "split" the dataset, "test_dataset" the test dataset, "none"
                       empty), and `seed` (the split seed)
- `curves.png`         train / val loss and accuracy per epoch
- `confusion.png`      the final confusion matrix (of the split the final metrics are evaluated on)

A result without the split fields (`train_indices`, `test_*`) writes `splits.npz` with the validation rows
and the rows it does not hold empty.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.figures import figure, matrix_heatmap, png_bytes, set_margins
from core.jsonsafe import json_safe
from core.models.build import rebuild_model
from core.models.heads import head_of, with_class_logits

__all__ = [
    "ARTIFACT_FILES",
    "ONNX_OPSET",
    "export_onnx",
    "load_model_from_artifacts",
    "warm_plotting",
    "write_artifacts",
]

ARTIFACT_FILES = (
    "model.safetensors",
    "model.json",
    "model.onnx",
    "metrics.json",
    "predictions.npz",
    "splits.npz",
    "curves.png",
    "confusion.png",
)
ONNX_OPSET = 17


def write_artifacts(result, out_dir: Path) -> list[Path]:
    """Write every artifact of `result` (a TrainResult) into `out_dir`; the paths, in ARTIFACT_FILES order."""
    from safetensors.torch import save as save_safetensors

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = result.model.to("cpu").eval()
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}

    exported = with_class_logits(model, head_of(result.model_json))  # coral / corn: log-probabilities

    files = {
        "model.safetensors": save_safetensors(state, metadata={"format": "simtrain.model"}),
        "model.json": _json_bytes(result.model_json),
        "model.onnx": export_onnx(
            exported, tuple(result.model_json["architecture"]["input_shape"]), _input_dtype(result.model_json)
        ),
        "metrics.json": _json_bytes(_metrics(result)),
        "predictions.npz": _npz_bytes(**_predictions(result)),
        "splits.npz": _npz_bytes(**_splits(result)),
        "curves.png": _curves_png(result.history),
        "confusion.png": _confusion_png(
            result.final_metrics.get("confusion_matrix"),
            result.model_json.get("classes", []),
            _evaluated_on(result),
        ),
    }
    paths = []
    for name in ARTIFACT_FILES:
        path = out_dir / name
        _write_atomic(path, files[name])
        paths.append(path)
    return paths


def _evaluated_on(result) -> str:
    return "val" if getattr(result, "test_indices", None) is None else "test"


def _predictions(result) -> dict[str, np.ndarray]:
    """predictions.npz: the validation split's (the keys of every version), then the test rows'."""
    arrays = {
        "indices": np.asarray(result.val_indices, dtype=np.int64),
        "targets": np.asarray(result.val_targets, dtype=np.int64),
        "probs": np.asarray(result.val_probs, dtype=np.float32),
        "classes": np.array(result.model_json.get("classes", []), dtype=np.str_),
    }
    if _evaluated_on(result) == "test":
        arrays["test_indices"] = np.asarray(result.test_indices, dtype=np.int64)
        arrays["test_targets"] = np.asarray(result.test_targets, dtype=np.int64)
        arrays["test_probs"] = np.asarray(result.test_probs, dtype=np.float32)
        arrays["test_source"] = np.array(getattr(result, "test_source", "split"), dtype=np.str_)
    return arrays


def _splits(result) -> dict[str, np.ndarray]:
    """splits.npz: the train / val / test row indices, where the test rows come from and the split seed."""
    empty = np.zeros(0, dtype=np.int64)
    train, test = getattr(result, "train_indices", None), getattr(result, "test_indices", None)
    seed = getattr(result, "split_seed", None)
    return {
        "train": empty if train is None else np.asarray(train, dtype=np.int64),
        "val": np.asarray(result.val_indices, dtype=np.int64),
        "test": empty if test is None else np.asarray(test, dtype=np.int64),
        "test_source": np.array(getattr(result, "test_source", "none"), dtype=np.str_),
        "seed": np.array(-1 if seed is None else seed, dtype=np.int64),
    }


def _split_sizes(result) -> dict[str, Any]:
    arrays = _splits(result)
    sizes = {name: len(arrays[name]) for name in ("train", "val", "test")}
    return {**sizes, "test_source": str(arrays["test_source"]), "seed": getattr(result, "split_seed", None)}


def _metrics(result) -> dict[str, Any]:
    """metrics.json: final metrics (and where they were evaluated), the history, how and where the run
    ended, the sizes of its splits."""
    return {
        "final": result.final_metrics,
        "evaluated_on": _evaluated_on(result),
        "splits": _split_sizes(result),
        "history": result.history,
        "stop_reason": result.stop_reason,
        "epochs_completed": result.epochs_completed,
        "best_epoch": getattr(result, "best_epoch", None),
        "train_seconds": result.train_seconds,
        "device": result.device,
        "classes": result.model_json.get("classes"),
    }


def load_model_from_artifacts(directory: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on CPU, model_json) from `model.safetensors` + `model.json` in `directory`."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model_json = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    state = load_file(directory / "model.safetensors", device="cpu")
    return rebuild_model(model_json, state), model_json


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> bytes:
    """ONNX bytes of `model` (CPU, eval): input "x" (batch, *input_shape) of `dtype` -> "logits", dynamic
    batch axis. A uint8 input (images stored as uint8) is cast to float inside the graph by the model's
    Standardize, so a client feeds the decoded pixels as they are.

    Uses the TorchScript exporter (`dynamo=False`): the dynamo exporter needs `onnxscript`, which the
    service does not install.
    """
    model = model.to("cpu", memory_format=torch.contiguous_format).eval()
    example = torch.zeros((2, *input_shape), dtype=dtype)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            buf,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )
    return buf.getvalue()


_INPUT_DTYPES = {"float32": torch.float32, "uint8": torch.uint8}


def _input_dtype(model_json: dict[str, Any]) -> torch.dtype:
    """The model's input dtype as model.json states it ("float32" when it says nothing)."""
    return _INPUT_DTYPES[model_json.get("input", {}).get("dtype", "float32")]


# ---------------------------------------------------------------------------------------------------------
# file helpers and plots


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n").encode("utf-8")


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The plots are on the critical path of every job (written before it is marked succeeded), so they are
# drawn for speed (core.figures: a bare Agg figure, fixed margins, few ticks, cell counts only for small
# matrices) and legends sit at a fixed place (loc="best" searches). worker/app.py imports matplotlib (and
# builds its font cache) at start-up through warm_plotting, so the first job does not pay for it.

_ANNOTATE_MAX_CLASSES = 15  # write the count in each cell up to this many classes (~0.4 ms a cell)
_LABEL_MAX_CHARS = 12


def warm_plotting() -> None:
    """Import matplotlib and draw both plots once (font cache, Agg, colormaps): the worker calls it at start."""
    history = [{"epoch": 1, "train": {"loss": 1.0, "accuracy": 0.5}, "val": {"loss": 1.0, "accuracy": 0.5}}]
    _curves_png(history)
    _confusion_png([[1, 0], [0, 1]], ["a", "b"])


def _curves_png(history: list[dict[str, Any]]) -> bytes:
    from matplotlib.ticker import MaxNLocator

    fig = figure(8, 3)
    set_margins(fig, left=0.55, right=0.15, bottom=0.5, top=0.3, wspace=0.25)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]

    def series(split: str, key: str) -> list[float]:
        return [float("nan") if r[split].get(key) is None else r[split][key] for r in history]

    ax_loss.plot(epochs, series("train", "loss"), marker=".", label="train")
    ax_loss.plot(epochs, series("val", "loss"), marker=".", label="val")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.plot(epochs, series("train", "accuracy"), marker=".", label="train")
    ax_acc.plot(epochs, series("val", "accuracy"), marker=".", label="val")
    ax_acc.set(title="accuracy", xlabel="epoch", ylim=(0, 1.02))
    for ax, loc in ((ax_loss, "upper right"), (ax_acc, "lower right")):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(alpha=0.3)
        ax.legend(loc=loc, fontsize=8)
    return png_bytes(fig)


def _confusion_png(matrix: list[list[int]] | None, classes: list[str], evaluated_on: str = "val") -> bytes:
    """The confusion matrix (zeros when there is none): counts in the cells, auto colour scale."""
    n = len(classes)
    cm = np.zeros((n, n)) if matrix is None else matrix
    fig = matrix_heatmap(
        cm,
        list(classes),
        title=f"confusion matrix ({'test' if evaluated_on == 'test' else 'validation'})",
        xlabel="predicted",
        ylabel="true",
        value_format="{:.0f}",
        annotate_max=_ANNOTATE_MAX_CLASSES,
        white_above=0.5,
        label_chars=_LABEL_MAX_CHARS,
    )
    return png_bytes(fig)
