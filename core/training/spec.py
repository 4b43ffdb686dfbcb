"""`TrainingSpec`: how to train (epochs, batch size, optimizer, split, seed, early stopping, limits,
augmentation, learning-rate schedule, precision, compilation, gradient clipping).

Pydantic with extra fields forbidden and every field bounded, so a request can never ask for unbounded work.

    spec = parse_training_spec({"epochs": 20, "optimizer": "sgd", "learning_rate": 0.05, "momentum": 0.9})
    spec = parse_training_spec({"augment": {"random_resized_crop": {"scale": [0.5, 1.0]},
                                            "horizontal_flip": True, "trivial_augment": True,
                                            "color_jitter": 0.2, "random_erasing": 0.25},
                                "scheduler": {"kind": "cosine", "warmup_epochs": 2},
                                "precision": "auto", "compile": False, "grad_clip_norm": 1.0})
    spec = parse_training_spec({"split": {"val": 0.2, "test": 0.2, "seed": 42}, "seed": 7})
    spec = with_seed(spec)        # a concrete seed (drawn at random when None), needed by the engine
    check_augment(spec.augment, "uint8", (3, 32, 32))   # SpecError unless it fits the dataset

Schedulers (torch.optim.lr_scheduler, see core/training/schedule.py): "cosine" (per step: linear warmup,
then cosine down to `learning_rate * min_lr_factor`), "onecycle" (per step: OneCycleLR, its rising phase
`warmup_epochs` long, default 30% of the run), "step" (per epoch: linear warmup, then the rate times
`gamma` every `step_epochs` epochs). Precision: "auto" (bf16 on a CUDA device that supports it, else
fp32), "bf16" / "fp16" (autocast; fp16 with a gradient scaler), "fp32". Augmentation applies to image
datasets only (core/training/augment.py; checked against the dataset when training starts).

Splits (core/training/splits.py): `split` = {"val", "test", "seed"} cuts the dataset into stratified
training / validation / test rows, deterministic for the split seed; `split.seed` defaults to the run seed
`training.seed` (so a spec without one splits as before: a new split per run seed); give it to keep one
split while the run seed varies the initialisation and the batch order. `split.test` = 0 (the default)
means no test split. `val_fraction` is the older spelling of `split.val` with no test split: a spec with
`split` gets `val_fraction` = `split.val` (giving both with other values is an error).

`keep_checkpoints` = {"best": N, "last": M} is the checkpoint retention (default: the last 2, no best).

The fields added after the first version (augment, scheduler, precision, compile, grad_clip_norm, split,
keep_checkpoints) are left out of `model_dump()` while they hold their defaults, so an older spec dumps
(and fingerprints its checkpoints) exactly as before they existed.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from core.errors import SpecError
from core.models.spec import validation_to_spec_error

__all__ = [
    "MAX_EPOCHS",
    "MAX_HELD_OUT",
    "MAX_RUNTIME_S",
    "MAX_SEED",
    "PRECISIONS",
    "AugmentSpec",
    "CosineSchedule",
    "KeepCheckpoints",
    "OneCycleSchedule",
    "RandomResizedCropSpec",
    "SplitSpec",
    "StepSchedule",
    "TrainingSpec",
    "check_augment",
    "parse_training_spec",
    "with_seed",
]

MAX_EPOCHS = 1000
MAX_SEED = 2**31 - 1
MAX_RUNTIME_S = 7 * 24 * 3600
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
MAX_HELD_OUT = 0.8  # split.val + split.test stays below this: the rest trains
_VAL_MIN, _VAL_MAX = 0.05, 0.5  # bounds of val_fraction and split.val

_STRICT = ConfigDict(extra="forbid", strict=True)
Fraction = Annotated[float, Field(gt=0.0, le=1.0)]


class RandomResizedCropSpec(BaseModel):
    """torchvision's RandomResizedCrop back to the image's own size: `scale` bounds the cropped area."""

    model_config = _STRICT

    scale: list[Fraction] = Field(default_factory=lambda: [0.08, 1.0], min_length=2, max_length=2)

    @field_validator("scale")
    @classmethod
    def _ordered(cls, value: list[float]) -> list[float]:
        if value[0] > value[1]:
            raise PydanticCustomError("scale_order", "scale must be [low, high] with low <= high")
        return value


class AugmentSpec(BaseModel):
    """Per-sample training augmentation (torchvision.transforms.v2), applied in this order."""

    model_config = _STRICT

    random_resized_crop: RandomResizedCropSpec | None = None
    horizontal_flip: bool = Field(default=False, description="flip left-right with probability 0.5")
    trivial_augment: bool = Field(default=False, description="TrivialAugmentWide (uint8 images)")
    color_jitter: float | None = Field(
        default=None, gt=0.0, le=1.0, description="brightness, contrast and saturation (uint8 images)"
    )
    random_erasing: float | None = Field(default=None, gt=0.0, le=1.0, description="probability")

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v not in (None, False)}

    def is_empty(self) -> bool:
        return not self.model_dump()


class _Schedule(BaseModel):
    model_config = _STRICT

    warmup_epochs: int = Field(default=0, ge=0, le=MAX_EPOCHS, description="must be < training.epochs")


class CosineSchedule(_Schedule):
    kind: Literal["cosine"]
    min_lr_factor: float = Field(default=0.0, ge=0.0, le=1.0, description="final lr = lr * factor")


class OneCycleSchedule(_Schedule):
    kind: Literal["onecycle"]
    warmup_epochs: int | None = Field(
        default=None, ge=1, le=MAX_EPOCHS, description="the rising phase (default: 30% of the run)"
    )


class StepSchedule(_Schedule):
    kind: Literal["step"]
    step_epochs: int = Field(default=30, ge=1, le=MAX_EPOCHS, description="epochs between lr drops")
    gamma: float = Field(default=0.1, gt=0.0, lt=1.0, description="factor of each drop")


Schedule = Annotated[CosineSchedule | OneCycleSchedule | StepSchedule, Field(discriminator="kind")]


class SplitSpec(BaseModel):
    """Stratified train / val / test fractions and the split's own seed (None: `training.seed`)."""

    model_config = _STRICT

    val: float = Field(
        default=0.2, ge=_VAL_MIN, le=_VAL_MAX, description="share of each class for validation"
    )
    test: float = Field(default=0.0, ge=0.0, le=0.5, description="share of each class for test (0: none)")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, description="default: training.seed")

    @field_validator("test")
    @classmethod
    def _room_to_train(cls, value: float, info: ValidationInfo) -> float:
        val = info.data.get("val")
        if val is not None and val + value >= MAX_HELD_OUT:
            raise PydanticCustomError(
                "split_too_large",
                "split.val + split.test ({total}) must be below {limit}: the rest is the training split",
                {"total": round(val + value, 6), "limit": MAX_HELD_OUT},
            )
        return value


class KeepCheckpoints(BaseModel):
    """Which checkpoints a job keeps (core/checkpoint.py): the `best` N by validation loss and the `last`
    M epochs; the newest usable one is never deleted."""

    model_config = _STRICT

    best: int = Field(default=0, ge=0, le=10, description="the N lowest-val-loss checkpoints")
    last: int = Field(default=2, ge=1, le=10, description="the M newest checkpoints")


# the fields that are left out of the dump while they hold these defaults
_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "augment": None,
    "scheduler": None,
    "precision": "auto",
    "compile": False,
    "grad_clip_norm": None,
    "split": None,
    "keep_checkpoints": KeepCheckpoints(),
}


class TrainingSpec(BaseModel):
    # strict: numbers only, as the schema says (lax mode took `"seed": false` as 0 and `"epochs": "5"` as 5)
    model_config = _STRICT

    epochs: int = Field(default=10, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(default=64, ge=1, le=65536)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=0.0, ge=0.0, le=1.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd only")
    val_fraction: float = Field(
        default=0.2, ge=_VAL_MIN, le=_VAL_MAX, description="split.val without a test split"
    )
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    patience: int | None = Field(default=None, ge=1, le=1000, description="early stopping on val loss")
    max_runtime_s: float | None = Field(default=None, ge=1, le=MAX_RUNTIME_S)
    checkpoint_every: int = Field(default=1, ge=1, le=MAX_EPOCHS, description="epochs between checkpoints")
    augment: AugmentSpec | None = Field(default=None, description="image datasets only")
    scheduler: Schedule | None = Field(default=None, description="learning-rate schedule")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    compile: bool = Field(default=False, description="torch.compile the model")
    grad_clip_norm: float | None = Field(default=None, gt=0.0, le=1e4, description="max gradient L2 norm")
    split: SplitSpec | None = Field(default=None, description="train / val / test fractions and split seed")
    keep_checkpoints: KeepCheckpoints = Field(
        default_factory=KeepCheckpoints, description="checkpoint retention: {best, last}"
    )

    @model_validator(mode="before")
    @classmethod
    def _val_fraction_follows_split(cls, data: Any) -> Any:
        """With `split`, `val_fraction` is `split.val`: filled in when absent, refused when it disagrees."""
        val = _split_val(data.get("split")) if isinstance(data, dict) else None
        if val is None:
            return data
        given = data.get("val_fraction")
        if given is not None and not _is_number(given):
            return data  # the field validator names what is wrong
        if given is None:
            return {**data, "val_fraction": val}
        if given != val:
            raise PydanticCustomError(
                "split_conflict",
                "val_fraction ({given}) and split.val ({val}) disagree: give the validation share once, "
                "as split.val",
                {"given": given, "val": val},
            )
        return data

    @field_validator("scheduler")
    @classmethod
    def _warmup_within_the_run(cls, value: Any, info: ValidationInfo) -> Any:
        epochs = info.data.get("epochs")
        warmup = getattr(value, "warmup_epochs", None)
        if epochs is not None and warmup is not None and warmup >= epochs:
            raise PydanticCustomError(
                "warmup_too_long",
                "warmup_epochs ({warmup}) must be less than training.epochs ({epochs})",
                {"warmup": warmup, "epochs": epochs},
            )
        return value

    @model_validator(mode="after")
    def _empty_augment_is_none(self) -> TrainingSpec:
        if self.augment is not None and self.augment.is_empty():
            self.augment = None
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name, default in _OPTIONAL_DEFAULTS.items():
            if name in data and getattr(self, name) == default:
                del data[name]
        return data


_SCHEDULE_KINDS = ("cosine", "onecycle", "step")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split_val(split: Any) -> float | None:
    """`split.val` of a raw `split` (its default when absent); None when there is no usable one (the
    field validators then name what is wrong)."""
    if isinstance(split, SplitSpec):
        return split.val
    if not isinstance(split, dict):
        return None
    val = split.get("val", SplitSpec.model_fields["val"].default)
    return val if _is_number(val) and _VAL_MIN <= val <= _VAL_MAX else None


def parse_training_spec(spec: TrainingSpec | dict[str, Any] | None) -> TrainingSpec:
    """Validate a dict (None: defaults); SpecError('training.<field>') otherwise."""
    if isinstance(spec, TrainingSpec):
        return spec
    try:
        return TrainingSpec.model_validate(spec or {})
    except ValidationError as e:
        raise _spec_error(e) from None


def _spec_error(exc: ValidationError) -> SpecError:
    """As `validation_to_spec_error`, without the tag pydantic puts into a scheduler field's location
    (("scheduler", "cosine", "min_lr_factor") -> training.scheduler.min_lr_factor); a `val_fraction` that
    disagrees with `split.val` is named training.val_fraction."""
    err = exc.errors()[0]
    loc = list(err.get("loc", ()))
    if len(loc) >= 2 and loc[0] == "scheduler" and loc[1] in _SCHEDULE_KINDS:
        del loc[1]
    if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("kind")
    if err.get("type") == "split_conflict":
        loc = ["val_fraction"]
    if tuple(loc) == tuple(err.get("loc", ())):
        return validation_to_spec_error("training", exc)
    return SpecError(".".join(["training", *map(str, loc)]), err.get("msg", "invalid value"))


_COLOR_FIELDS = ("trivial_augment", "color_jitter")


def check_augment(spec: AugmentSpec | None, dtype: Any, feature_shape: Sequence[int]) -> None:
    """SpecError naming the field when `spec` cannot apply to a dataset of this dtype ("uint8",
    "float32") and feature shape: augmentation needs images (C, H, W), the colour transforms uint8
    images with 1 or 3 channels."""
    if spec is None:
        return
    shape = [int(d) for d in feature_shape]
    if len(shape) != 3:
        raise SpecError(
            "training.augment",
            f"augmentation needs an image dataset (C, H, W); its features have shape {shape}",
        )
    used = spec.model_dump()
    for field in (f for f in _COLOR_FIELDS if f in used):
        if str(dtype) != "uint8":
            raise SpecError(f"training.augment.{field}", f"needs uint8 images, this dataset stores {dtype}")
        if shape[0] not in (1, 3):
            raise SpecError(f"training.augment.{field}", f"needs 1 or 3 channels, the images have {shape[0]}")


def with_seed(spec: TrainingSpec) -> TrainingSpec:
    """`spec` with a concrete seed (a random one when it has none)."""
    if spec.seed is not None:
        return spec
    return spec.model_copy(update={"seed": secrets.randbelow(MAX_SEED)})
