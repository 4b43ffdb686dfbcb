"""Models: `ModelSpec`, the networks (with built-in standardisation), build / rebuild and warm starts.

from core.models import ModelSpec, build_model, rebuild_model
model = build_model({"kind": "mlp", "hidden": [64]}, (64,), 10, mean=mean, std=std)
model = build_model({"kind": "timm", "architecture": "resnet18"}, (3, 32, 32), 10, mean=mean, std=std)
report = load_init_weights(model, state_dict, source_classes=old, target_classes=new)
optimizer = torch.optim.AdamW(param_groups(model, freeze="none", backbone_lr_factor=0.1, lr=1e-3))

Kinds are created by name from one registry (core/models/registry.py): linear, mlp, cnn, timm.
"""

from core.lazy import lazy_exports
from core.models.spec import (
    InitSpec,
    ModelSpec,
    TimmOptions,
    parse_model_spec,
    resolve_kind,
    timm_architectures,
    validation_to_spec_error,
)

__all__ = [
    "MAX_PARAMETERS",
    "MODEL_FORMAT_VERSION",
    "MODEL_KINDS",
    "Classifier",
    "InitReport",
    "InitSpec",
    "ModelKind",
    "ModelSpec",
    "Standardize",
    "TimmOptions",
    "apply_small_image_stem",
    "architecture_json",
    "build_model",
    "count_parameters",
    "get_kind",
    "head_parameter_names",
    "load_init_weights",
    "param_groups",
    "parse_model_spec",
    "rebuild_model",
    "register_kind",
    "resolve_kind",
    "standardization_stats",
    "stats_shape",
    "supports_small_image_stem",
    "timm_architectures",
    "validation_to_spec_error",
]

# The networks (torch, timm) are imported on first use of one of their names, so that `ModelSpec` (the API's
# schemas) imports without torch.
_LAZY = {
    "build": (
        "MAX_PARAMETERS", "MODEL_FORMAT_VERSION", "architecture_json", "build_model", "count_parameters",
        "rebuild_model",
    ),
    "init": ("InitReport", "head_parameter_names", "load_init_weights", "param_groups"),
    "nets": ("Classifier", "Standardize", "standardization_stats", "stats_shape"),
    "registry": ("MODEL_KINDS", "ModelKind", "get_kind", "register_kind"),
    "timm_nets": ("apply_small_image_stem", "supports_small_image_stem"),
}  # fmt: skip
__getattr__ = lazy_exports(__name__, _LAZY)
