"""The job request (`JobCreate`) that the REST API accepts unchanged, and its validation against a dataset.

Structure is checked by pydantic (422 with the field's location); what depends on the dataset's classes
(unknown class names, a matrix of the wrong size, a loss that needs a similarity it was not given,
augmentation of a dataset that is no uint8 image set) is checked by `validate_job`, which builds the similarity and the loss once and raises `SpecError` naming the
field. Nothing is stored before this passes.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.errors import SpecError
from core.losses import LossSpec, build_loss, parse_loss_spec
from core.models import ModelSpec
from core.similarity import MAX_CLASSES, SimilaritySpec, build_similarity
from core.training import TrainingSpec
from core.training.spec import check_augment

__all__ = ["DATASET_REF_PATTERN", "ClassName", "JobCreate", "validate_job"]

DATASET_REF_PATTERN = (
    r"^(builtin:[a-z0-9][a-z0-9_-]{0,40}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
ClassName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=512)]


class JobCreate(BaseModel):
    """A training job: which data, which classes, how alike they are, and which loss to train with."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        min_length=1,
        max_length=100,
        pattern=DATASET_REF_PATTERN,
        description="`builtin:digits` or the id of an uploaded dataset",
    )
    classes: list[ClassName] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_CLASSES,
        description="a reordering or subset of the dataset's classes (default: all, in dataset order)",
    )
    similarity: SimilaritySpec | None = Field(default=None, description="how alike the classes are")
    loss: LossSpec = Field(default_factory=lambda: parse_loss_spec({"kind": "cross_entropy"}))
    model: ModelSpec = Field(default_factory=ModelSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    metadata: dict[MetaKey, MetaValue] | None = Field(default=None, max_length=32)


def validate_job(
    job: JobCreate,
    dataset_classes: list[str],
    *,
    max_epochs: int,
    feature_shape: Sequence[int] | None = None,
    dtype: str | None = None,
) -> dict[str, Any]:
    """Check a job against its dataset; return the normalised spec to store (seed filled in).

    With the dataset's `feature_shape` and `dtype` ("uint8" / "float32", as `DatasetInfo` has them) the
    augmentation is checked too (images only, colour transforms on uint8); the engine checks it again
    when training starts."""
    classes = list(job.classes) if job.classes is not None else list(dataset_classes)
    if job.classes is not None:
        if len(set(classes)) != len(classes):
            raise SpecError("classes", "contains duplicates")
        unknown = [c for c in classes if c not in set(dataset_classes)]
        if unknown:
            raise SpecError("classes", f"not in the dataset: {unknown[:5]}")
    if job.training.epochs > max_epochs:
        raise SpecError("training.epochs", f"must be at most {max_epochs}, got {job.training.epochs}")
    if feature_shape is not None:
        check_augment(job.training.augment, dtype or "float32", feature_shape)
    spec = job.model_dump(mode="json")
    spec["classes"] = classes
    sim_spec = spec.get("similarity")
    similarity = build_similarity(sim_spec, classes) if sim_spec is not None else None
    build_loss(spec["loss"], similarity, classes, similarity_spec=sim_spec)
    if spec["training"].get("seed") is None:
        spec["training"]["seed"] = secrets.randbelow(2**31 - 1)
    return spec
