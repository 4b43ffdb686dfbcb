"""`TrainingSpec`: how to train (epochs, batch size, optimizer, split, seed, early stopping, limits).

Pydantic with extra fields forbidden and every field bounded, so a request can never ask for unbounded work.

    spec = parse_training_spec({"epochs": 20, "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9})
    spec = with_seed(spec)        # a concrete seed (drawn at random when None), needed by the engine
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.models.spec import validation_to_spec_error

__all__ = ["MAX_EPOCHS", "MAX_RUNTIME_S", "MAX_SEED", "TrainingSpec", "parse_training_spec", "with_seed"]

MAX_EPOCHS = 1000
MAX_SEED = 2**31 - 1
MAX_RUNTIME_S = 7 * 24 * 3600


class TrainingSpec(BaseModel):
    # strict: numbers only, as the schema says (lax mode took `"seed": false` as 0 and `"epochs": "5"` as 5)
    model_config = ConfigDict(extra="forbid", strict=True)

    epochs: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=64, ge=1, le=65536)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd only")
    val_fraction: float = Field(default=0.2, ge=0.05, le=0.5)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    patience: int | None = Field(default=None, ge=1, le=1000, description="early stopping on val loss")
    max_runtime_s: float | None = Field(default=None, ge=1, le=MAX_RUNTIME_S)
    checkpoint_every: int = Field(default=1, ge=1, le=MAX_EPOCHS, description="epochs between checkpoints")


def parse_training_spec(spec: TrainingSpec | dict[str, Any] | None) -> TrainingSpec:
    """Validate a dict (None: defaults); SpecError('training.<field>') otherwise."""
    if isinstance(spec, TrainingSpec):
        return spec
    try:
        return TrainingSpec.model_validate(spec or {})
    except ValidationError as e:
        raise validation_to_spec_error("training", e) from None


def with_seed(spec: TrainingSpec) -> TrainingSpec:
    """`spec` with a concrete seed (a random one when it has none)."""
    if spec.seed is not None:
        return spec
    return spec.model_copy(update={"seed": secrets.randbelow(MAX_SEED)})
