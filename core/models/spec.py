"""`ModelSpec`: the user-facing description of the network architecture (pydantic, extra fields forbidden).

    spec = parse_model_spec({"kind": "mlp", "hidden": [256, 128], "dropout": 0.1})
    spec = parse_model_spec({"kind": "timm", "architecture": "resnet18", "options": {"drop_rate": 0.2},
                             "small_image_stem": "auto", "init": {"from_job": JOB_ID}, "freeze": "backbone"})
    resolve_kind(spec, (1, 28, 28))   # "auto" -> "cnn" for (C, H, W) inputs with H, W >= 8, else "mlp"

Kinds: linear, mlp, cnn (`hidden`, `dropout`, `channels`) and timm (`architecture`: any name of
`timm.list_models()`, bounded `options`, `small_image_stem`). Any kind can warm-start: `init` names a
finished job (its final model, or with `checkpoint` one of its kept checkpoints) or uploaded weights
(resolved by the worker), `freeze` / `backbone_lr_factor` say how the backbone trains (see
core/models/init.py). `head` is the output head of any kind: "softmax" (C logits, the default), or for
ordered classes "coral" / "corn" (C - 1 outputs, trained with the loss of the same kind; see
core/models/heads.py).

The fields added for timm, warm starts and heads are left out of `model_dump()` while they hold their
defaults, so a linear / mlp / cnn spec dumps (and fingerprints its checkpoints) exactly as before they
existed.

`parse_model_spec` turns pydantic errors into `SpecError("model.<field>", reason)`;
`validation_to_spec_error` does the same for any spec model (the training spec uses it too).
"""

from __future__ import annotations

import difflib
import functools
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.errors import SpecError

__all__ = [
    "InitSpec",
    "ModelSpec",
    "TimmOptions",
    "parse_model_spec",
    "resolve_kind",
    "timm_architectures",
    "validation_to_spec_error",
]

Width = Annotated[int, Field(ge=1, le=4096)]
Channels = Annotated[int, Field(ge=1, le=512)]
Rate = Annotated[float, Field(ge=0.0, lt=0.9)]
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
ResourceId = Annotated[str, StringConstraints(min_length=36, max_length=36, pattern=UUID_PATTERN)]

# defaults of the fields that a linear / mlp / cnn spec leaves out of its dump
_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "architecture": None,
    "options": None,
    "small_image_stem": "auto",
    "init": None,
    "freeze": "none",
    "backbone_lr_factor": 1.0,
    "head": "softmax",
}


@functools.lru_cache(maxsize=1)
def timm_architectures() -> frozenset[str]:
    """Every architecture name timm can create (`timm.list_models()`, without pretrained tags)."""
    import timm

    return frozenset(timm.list_models())


class TimmOptions(BaseModel):
    """The keyword arguments a timm architecture may be created with (an allow-list with ranges)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    drop_rate: Rate | None = Field(default=None, description="dropout before the classifier")
    drop_path_rate: Rate | None = Field(default=None, description="stochastic depth")
    drop_block_rate: Rate | None = Field(default=None, description="DropBlock (ResNet family)")
    global_pool: Literal["avg", "max", "avgmax", "catavgmax", "token"] | None = Field(
        default=None, description="the pooling before the classifier"
    )
    pretrained: bool = Field(default=False, description="refused: weights are never downloaded")

    @field_validator("pretrained")
    @classmethod
    def _no_downloads(cls, value: bool) -> bool:
        if value:
            raise PydanticCustomError(
                "pretrained_refused",
                "pretrained weights cannot be downloaded; warm-start from a finished job or uploaded "
                "weights with model.init",
            )
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the options that were set (`pretrained` is always false)."""
        return {k: v for k, v in handler(self).items() if v is not None and k != "pretrained"}

    def create_kwargs(self) -> dict[str, Any]:
        """The options that were set, as keyword arguments of `timm.create_model`."""
        return self.model_dump()


class InitSpec(BaseModel):
    """Warm-start weights: exactly one of a finished job's model or an uploaded weights file (ids); with
    `from_job`, `checkpoint` names one of that job's kept checkpoints (an epoch) instead of its final
    model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    from_job: ResourceId | None = None
    weights: ResourceId | None = None
    checkpoint: int | None = Field(
        default=None, ge=1, le=1000, description="from_job only: the epoch of a kept checkpoint"
    )

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_of_a_job(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("from_job") is None:
            raise PydanticCustomError("checkpoint_needs_job", "a checkpoint warm start needs from_job")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> InitSpec:
        if (self.from_job is None) == (self.weights is None):
            raise PydanticCustomError("init_source", "give exactly one of from_job or weights")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class ModelSpec(BaseModel):
    # strict: numbers only, as the schema says (lax mode took `"seed": false` as 0 and `"epochs": "5"` as 5)
    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["auto", "linear", "mlp", "cnn", "timm"] = "auto"
    hidden: list[Width] = Field(default_factory=lambda: [128], min_length=1, max_length=4)
    dropout: float = Field(default=0.0, ge=0.0, lt=0.9)
    channels: list[Channels] = Field(default_factory=lambda: [16, 32], min_length=1, max_length=4)
    architecture: str | None = Field(
        default=None,
        max_length=100,
        validate_default=True,
        description="kind timm: a timm.list_models() name",
    )
    options: TimmOptions | None = Field(default=None, description="kind timm: creation options")
    small_image_stem: bool | Literal["auto"] = Field(
        default="auto",
        description="kind timm, ResNet family: 3x3 stride-1 stem, no max-pool (auto: when H or W < 64)",
    )
    init: InitSpec | None = Field(default=None, description="warm-start weights")
    freeze: Literal["none", "backbone"] = Field(default="none", validate_default=True)
    backbone_lr_factor: float = Field(default=1.0, gt=0.0, le=1.0, description="backbone lr = lr * factor")
    head: Literal["softmax", "coral", "corn"] = Field(
        default="softmax", description="output head; coral / corn: C - 1 outputs for ordered classes"
    )

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind is None:  # the kind itself was invalid
            return value
        if kind != "timm":
            if value is not None:
                raise PydanticCustomError("timm_only", "only kind timm takes an architecture")
            return value
        if value is None:
            raise PydanticCustomError("missing", "kind timm needs an architecture (a timm model name)")
        return _check_timm_name(value)

    @field_validator("options", "small_image_stem")
    @classmethod
    def _timm_only(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("kind", "timm") != "timm" and value != _OPTIONAL_DEFAULTS[info.field_name]:
            raise PydanticCustomError("timm_only", "only kind timm takes {field}", {"field": info.field_name})
        return value

    @field_validator("freeze")
    @classmethod
    def _freeze_needs_init(cls, value: str, info: ValidationInfo) -> str:
        if value == "backbone" and info.data.get("init") is None and "init" in info.data:
            raise PydanticCustomError(
                "freeze_needs_init", "freezing the backbone needs warm-start weights (init)"
            )
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name, default in _OPTIONAL_DEFAULTS.items():
            if name in data and getattr(self, name) == default:
                del data[name]
        return data


def _check_timm_name(name: str) -> str:
    known = timm_architectures()
    if name in known:
        return name
    base, _, tag = name.partition(".")
    if tag and base in known:
        message = (
            f"pretrained tags are not supported (weights are never downloaded); use {base!r} and model.init"
        )
        raise PydanticCustomError("pretrained_refused", message.replace("{", "(").replace("}", ")"))
    close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "see timm.list_models()"
    message = f"unknown timm architecture {name!r}; {hint}"
    raise PydanticCustomError("unknown_architecture", message.replace("{", "(").replace("}", ")"))


def validation_to_spec_error(prefix: str, exc: ValidationError) -> SpecError:
    """The first pydantic error as SpecError with a dotted field path under `prefix`."""
    err = exc.errors()[0]
    loc = ".".join(str(part) for part in err.get("loc", ()))
    return SpecError(f"{prefix}.{loc}" if loc else prefix, err.get("msg", "invalid value"))


def parse_model_spec(spec: ModelSpec | dict[str, Any] | None) -> ModelSpec:
    """Validate a dict (or None for the defaults) into a ModelSpec; SpecError('model.<field>') otherwise."""
    if isinstance(spec, ModelSpec):
        return spec
    try:
        return ModelSpec.model_validate(spec or {})
    except ValidationError as e:
        raise validation_to_spec_error("model", e) from None


def resolve_kind(spec: ModelSpec, input_shape: tuple[int, ...]) -> str:
    """The concrete kind for `input_shape` ("auto" resolved); SpecError if "cnn" / "timm" cannot apply."""
    is_image = len(input_shape) == 3 and input_shape[1] >= 8 and input_shape[2] >= 8
    if spec.kind == "auto":
        return "cnn" if is_image else "mlp"
    if spec.kind in ("cnn", "timm") and len(input_shape) != 3:
        raise SpecError(
            "model.kind",
            f"{spec.kind} needs image inputs (C, H, W), the dataset has shape {list(input_shape)}",
        )
    return spec.kind
