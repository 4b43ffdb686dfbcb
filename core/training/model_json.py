"""`model_json`: the description of a trained model saved next to its weights (format "simtrain.model").

    description = model_json(setup, state)   # architecture, classes, specs, preprocessing, I/O, run summary
    input_dtype(ds)                            # "uint8" for stored images, else "float32"

It is everything needed to rebuild and use the model without the training plan: the architecture, the
class names in output order, the similarity / loss / training specs, how raw data becomes the model's
input and how the run ended.

- `preprocessing`: for images, the dataset's own description of how uploaded files became its
  uint8 `(C, H, W)` arrays (`{"kind": "image", "size": [H, W], "resize": ..., "channels": ...}`, from
  `ArrayDataset.preprocessing`; predict applies the same to its uploads); for tabular data (no such
  description) the standardisation below, as in the first format version;
- `standardize`: the standardisation inside the model (buffers computed on the training split, in the
  stored units: 0-255 for uint8 pixels);
- `input`: the dtype the model (and its ONNX export) takes: "uint8" for image datasets stored as uint8,
  else "float32";
- `init`: what a warm start loaded (source, tensors loaded / skipped, head reset), when there was one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.data.dataset import ArrayDataset
from core.models.build import MODEL_FORMAT_VERSION, architecture_json
from core.models.nets import stats_shape
from core.training.state import TrainSetup, TrainState

__all__ = ["input_dtype", "model_json"]


def model_json(setup: TrainSetup, state: TrainState) -> dict[str, Any]:
    """The "simtrain.model" description of the run `setup` ended in `state`."""
    ds, spec = setup.dataset, setup.spec
    shape, num_classes = ds.feature_shape, len(setup.classes)
    standardize = _standardize(shape, input_dtype(ds))
    described = getattr(ds, "preprocessing", None)
    out = {
        "format": "simtrain.model",
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": architecture_json(setup.model_spec, shape, num_classes),
        "model_spec": setup.model_spec.model_dump(mode="json"),
        "classes": setup.classes,
        "similarity": setup.similarity_spec,
        "loss": setup.loss_spec,
        "preprocessing": dict(described) if described else standardize,
        "standardize": standardize,
        "input": {"name": "x", "dtype": input_dtype(ds), "shape": ["batch", *shape]},
        "output": {"name": "logits", "dtype": "float32", "shape": ["batch", num_classes]},
        "training": spec.model_dump(mode="json"),
        "seed": spec.seed,
        "best_epoch": state.best["epoch"],
        "epochs_completed": state.epoch,
        "stop_reason": state.stop_reason,
    }
    if setup.init is not None:
        out["init"] = setup.init
    if setup.decision is not None:
        out["decision"] = dict(setup.decision)  # predict answers with this rule (core.decision_spec)
    return out


def input_dtype(ds: ArrayDataset) -> str:
    """The model's input dtype for this dataset: "uint8" for stored images, else "float32"."""
    return "uint8" if ds.x.dtype == np.uint8 else "float32"


def _standardize(feature_shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
    return {
        "kind": "standardize",
        "inside_model": True,
        "formula": "(x - mean) / std",
        "per": "channel" if len(feature_shape) == 3 else "feature",
        "stats_shape": list(stats_shape(feature_shape)),
        "computed_on": "training split",
        "units": "stored values, cast to float32" + (" (0-255 pixels)" if dtype == "uint8" else ""),
        "buffers": ["standardize.mean", "standardize.std"],
    }
