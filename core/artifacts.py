"""Write a finished run's artifacts to a directory, and rebuild the model from them.

    paths = write_artifacts(result, Path("out"))
    model, model_json = load_model_from_artifacts(Path("out"))     # needs only the first two files

Files:

- `model.safetensors`  the state dict (weights and the standardisation buffers)
- `model.json`         architecture, classes, similarity / loss / training specs, seed, preprocessing
- `model.onnx`         the same network (preprocessing included), input "x" -> output "logits", dynamic batch
- `metrics.json`       final metrics on the validation split, per-epoch history, stop reason, timing
- `predictions.npz`    val `indices`, `targets`, `probs` (and `classes`)
- `curves.png`         train / val loss and accuracy per epoch
- `confusion.png`      the final confusion matrix
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.models.build import rebuild_model

__all__ = [
    "ARTIFACT_FILES",
    "ONNX_OPSET",
    "export_onnx",
    "load_model_from_artifacts",
    "to_jsonable",
    "warm_plotting",
    "write_artifacts",
]

ARTIFACT_FILES = (
    "model.safetensors",
    "model.json",
    "model.onnx",
    "metrics.json",
    "predictions.npz",
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

    files = {
        "model.safetensors": save_safetensors(state, metadata={"format": "simtrain.model"}),
        "model.json": _json_bytes(result.model_json),
        "model.onnx": export_onnx(model, tuple(result.model_json["architecture"]["input_shape"])),
        "metrics.json": _json_bytes(
            {
                "final": result.final_metrics,
                "history": result.history,
                "stop_reason": result.stop_reason,
                "epochs_completed": result.epochs_completed,
                "best_epoch": getattr(result, "best_epoch", None),
                "train_seconds": result.train_seconds,
                "device": result.device,
                "classes": result.model_json.get("classes"),
            }
        ),
        "predictions.npz": _npz_bytes(
            indices=np.asarray(result.val_indices, dtype=np.int64),
            targets=np.asarray(result.val_targets, dtype=np.int64),
            probs=np.asarray(result.val_probs, dtype=np.float32),
            classes=np.array(result.model_json.get("classes", []), dtype=np.str_),
        ),
        "curves.png": _curves_png(result.history),
        "confusion.png": _confusion_png(
            result.final_metrics.get("confusion_matrix"), result.model_json.get("classes", [])
        ),
    }
    paths = []
    for name in ARTIFACT_FILES:
        path = out_dir / name
        _write_atomic(path, files[name])
        paths.append(path)
    return paths


def load_model_from_artifacts(directory: Path) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on CPU, model_json) from `model.safetensors` + `model.json` in `directory`."""
    from safetensors.torch import load_file

    directory = Path(directory)
    model_json = json.loads((directory / "model.json").read_text(encoding="utf-8"))
    state = load_file(directory / "model.safetensors", device="cpu")
    return rebuild_model(model_json, state), model_json


def export_onnx(model: nn.Module, input_shape: tuple[int, ...]) -> bytes:
    """ONNX bytes of `model` (CPU, eval): input "x" (batch, *input_shape) -> "logits", dynamic batch axis.

    Uses the TorchScript exporter (`dynamo=False`): the dynamo exporter needs `onnxscript`, which the
    service does not install.
    """
    model = model.to("cpu").eval()
    example = torch.zeros((2, *input_shape), dtype=torch.float32)
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


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: numpy / torch scalars and arrays converted, NaN and infinities -> None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------------------------------------
# file helpers and plots


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n").encode("utf-8")


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
# drawn for speed: the object-oriented API on a bare Figure + Agg canvas (no pyplot state), a modest size
# and dpi, fixed margins computed from the label lengths (tight_layout costs a full extra draw), few ticks,
# legends at a fixed place (loc="best" searches), and cell counts only for small matrices. worker/app.py
# imports matplotlib (and builds its font cache) at start-up, so the first job does not pay for it.

_DPI = 80
_ANNOTATE_MAX_CLASSES = 15  # write the count in each cell up to this many classes (~0.4 ms a cell)
_TICK_LABELS_MAX_CLASSES = 40  # one labelled tick per class up to this many; fewer integer ticks beyond
_LABEL_MAX_CHARS = 12


def warm_plotting() -> None:
    """Import matplotlib and draw both plots once (font cache, Agg, colormaps): the worker calls it at start."""
    history = [{"epoch": 1, "train": {"loss": 1.0, "accuracy": 0.5}, "val": {"loss": 1.0, "accuracy": 0.5}}]
    _curves_png(history)
    _confusion_png([[1, 0], [0, 1]], ["a", "b"])


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _margins(fig, left: float, right: float, bottom: float, top: float, **kw: float) -> None:
    """Fixed margins in inches (subplots_adjust takes figure fractions)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height, **kw
    )


def _curves_png(history: list[dict[str, Any]]) -> bytes:
    from matplotlib.ticker import MaxNLocator

    fig = _figure(8, 3)
    _margins(fig, left=0.55, right=0.15, bottom=0.5, top=0.3, wspace=0.25)
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
    return _png(fig)


def _confusion_png(matrix: list[list[int]] | None, classes: list[str]) -> bytes:
    from matplotlib.ticker import MaxNLocator

    n = len(classes)
    cm = np.asarray(matrix if matrix is not None else np.zeros((n, n)), dtype=np.float64).reshape(n, n)
    labelled = 0 < n <= _TICK_LABELS_MAX_CLASSES
    labels = [c if len(c) <= _LABEL_MAX_CHARS else c[: _LABEL_MAX_CHARS - 1] + "…" for c in classes]
    # room for the tick labels (~0.06 in per character at fontsize 7) or for short integer ticks
    label_in = 0.08 + 0.06 * max((len(c) for c in labels), default=1) if labelled else 0.3
    side = min(3.2 + 0.2 * n, 9.0)  # the matrix itself, in inches
    left, bottom, right, top = 0.3 + label_in, 0.3 + label_in, 0.9, 0.35
    fig = _figure(left + side + right, bottom + side + top)
    width, height = fig.get_size_inches()
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    cax = fig.add_axes(((left + side + 0.1) / width, bottom / height, 0.15 / width, side / height))
    image = ax.imshow(cm, cmap="Blues", interpolation="nearest", aspect="auto")
    fig.colorbar(image, cax=cax)
    cax.tick_params(labelsize=7)
    ax.set_title("confusion matrix (validation)", fontsize=9)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    if labelled:
        ax.set_xticks(range(n), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(n), labels, fontsize=7)
    else:
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=10, integer=True))
        ax.tick_params(labelsize=7)
    if 0 < n <= _ANNOTATE_MAX_CLASSES:
        threshold = cm.max() / 2 if cm.max() > 0 else 1
        fontsize = 8 if n <= 12 else 6
        for i in range(n):
            for j in range(n):
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", color=color, fontsize=fontsize)
    return _png(fig)
