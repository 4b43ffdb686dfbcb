"""`model_json`: the description of a trained model saved next to its weights (format "simtrain.model").

    description = model_json(setup, state)   # architecture, classes, specs, preprocessing, I/O, run summary

It is everything needed to rebuild and use the model without the training plan: the architecture, the
class names in output order, the similarity / loss / training specs, how inputs are standardised (inside
the model, with buffers computed on the training split) and how the run ended.
"""

from __future__ import annotations

from typing import Any

from core.models.build import MODEL_FORMAT_VERSION, architecture_json
from core.models.nets import stats_shape
from core.training.state import TrainSetup, TrainState

__all__ = ["model_json"]


def model_json(setup: TrainSetup, state: TrainState) -> dict[str, Any]:
    """The "simtrain.model" description of the run `setup` ended in `state`."""
    shape, num_classes, spec = setup.dataset.feature_shape, len(setup.classes), setup.spec
    return {
        "format": "simtrain.model",
        "format_version": MODEL_FORMAT_VERSION,
        "architecture": architecture_json(setup.model_spec, shape, num_classes),
        "model_spec": setup.model_spec.model_dump(mode="json"),
        "classes": setup.classes,
        "similarity": setup.similarity_spec,
        "loss": setup.loss_spec,
        "preprocessing": _preprocessing(shape),
        "input": {"name": "x", "dtype": "float32", "shape": ["batch", *shape]},
        "output": {"name": "logits", "dtype": "float32", "shape": ["batch", num_classes]},
        "training": spec.model_dump(mode="json"),
        "seed": spec.seed,
        "best_epoch": state.best["epoch"],
        "epochs_completed": state.epoch,
        "stop_reason": state.stop_reason,
    }


def _preprocessing(feature_shape: tuple[int, ...]) -> dict[str, Any]:
    return {
        "kind": "standardize",
        "inside_model": True,
        "formula": "(x - mean) / std",
        "per": "channel" if len(feature_shape) == 3 else "feature",
        "stats_shape": list(stats_shape(feature_shape)),
        "computed_on": "training split",
        "buffers": ["standardize.mean", "standardize.std"],
    }
