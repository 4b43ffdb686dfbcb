"""`ModelSpec`: the user-facing description of the network architecture (pydantic, extra fields forbidden).

    spec = parse_model_spec({"kind": "mlp", "hidden": [256, 128], "dropout": 0.1})
    resolve_kind(spec, (1, 28, 28))   # "auto" -> "cnn" for (C, H, W) inputs with H, W >= 8, else "mlp"

`parse_model_spec` turns pydantic errors into `SpecError("model.<field>", reason)`;
`validation_to_spec_error` does the same for any spec model (the training spec uses it too).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import SpecError

__all__ = ["ModelSpec", "parse_model_spec", "resolve_kind", "validation_to_spec_error"]

Width = Annotated[int, Field(ge=1, le=4096)]
Channels = Annotated[int, Field(ge=1, le=512)]


class ModelSpec(BaseModel):
    # strict: numbers only, as the schema says (lax mode took `"seed": false` as 0 and `"epochs": "5"` as 5)
    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["auto", "linear", "mlp", "cnn"] = "auto"
    hidden: list[Width] = Field(default_factory=lambda: [128], min_length=1, max_length=4)
    dropout: float = Field(default=0.0, ge=0.0, lt=0.9)
    channels: list[Channels] = Field(default_factory=lambda: [16, 32], min_length=1, max_length=4)


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
    """The concrete architecture for `input_shape` ("auto" resolved); SpecError if "cnn" cannot apply."""
    is_image = len(input_shape) == 3 and input_shape[1] >= 8 and input_shape[2] >= 8
    if spec.kind == "auto":
        return "cnn" if is_image else "mlp"
    if spec.kind == "cnn" and len(input_shape) != 3:
        raise SpecError(
            "model.kind", f"cnn needs image inputs (C, H, W), the dataset has shape {list(input_shape)}"
        )
    return spec.kind
