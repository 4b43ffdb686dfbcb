"""Models: `ModelSpec`, the networks (with built-in standardisation) and build / rebuild.

from core.models import ModelSpec, build_model, rebuild_model
model = build_model({"kind": "mlp", "hidden": [64]}, (64,), 10, mean=mean, std=std)
"""

from core.models.build import (
    MAX_PARAMETERS,
    MODEL_FORMAT_VERSION,
    architecture_json,
    build_model,
    count_parameters,
    rebuild_model,
)
from core.models.nets import Classifier, Standardize, standardization_stats, stats_shape
from core.models.spec import ModelSpec, parse_model_spec, resolve_kind, validation_to_spec_error

__all__ = [
    "MAX_PARAMETERS",
    "MODEL_FORMAT_VERSION",
    "Classifier",
    "ModelSpec",
    "Standardize",
    "architecture_json",
    "build_model",
    "count_parameters",
    "parse_model_spec",
    "rebuild_model",
    "resolve_kind",
    "standardization_stats",
    "stats_shape",
    "validation_to_spec_error",
]
