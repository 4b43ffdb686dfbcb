"""The job request (`JobCreate`) that the REST API accepts unchanged, and its validation against a dataset.

Structure is checked by pydantic (422 with the field's location); what depends on the dataset's classes
(unknown class names, a matrix of the wrong size, a loss that needs a similarity it was not given,
augmentation of a dataset that is no uint8 image set) is checked by `validate_job`, which builds the similarity and the loss once and raises `SpecError` naming the
field. Nothing is stored before this passes.

A job's test rows come from `training.split.test` or from `test_dataset`, another dataset reference in
the job's classes (never both, never the training dataset itself). Given the test dataset's
`DatasetInfo` (`test_info=dataset_info(session, tenant, job.test_dataset)`, which is also what 404s an
unknown one), `validate_job` checks its classes, feature shape and dtype; the worker checks them again
when it opens it (core/training/splits.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.decision_spec import DecisionRule, DecisionThreshold, check_heads_and_decision
from core.errors import SpecError
from core.losses import LossSpec, parse_loss_spec
from core.models import ModelSpec
from core.routing import JobPriority, JobResources
from core.similarity import MAX_CLASSES, SimilaritySpec
from core.tracking.spec import TrackingSpec
from core.training import TrainingSpec
from core.training.spec import check_augment

__all__ = ["DATASET_REF_PATTERN", "ClassName", "JobCreate", "check_test_dataset", "validate_job"]

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
        max_length=2000,
        pattern=DATASET_REF_PATTERN + r"|^[A-Za-z][A-Za-z0-9+.-]{0,15}://\S+$",
        description="`builtin:digits`, the id of an uploaded dataset, or a URI to import (https://, http://, "
        "s3://; `core.dataset_import`: the job waits for the import)",
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
    test_dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=DATASET_REF_PATTERN,
        description="the test rows: another dataset in the job's classes (instead of training.split.test)",
    )
    tracking: TrackingSpec | None = Field(default=None, description="the job's MLflow run (core.tracking)")
    decision: DecisionRule = Field(default="argmax", description="how predict answers (core.decision_spec)")
    decision_threshold: DecisionThreshold = Field(default=0.5, description="median rule: P(y > k) > it")
    priority: JobPriority = Field(default="normal", description="its place in the queue (core.routing)")
    resources: JobResources = Field(default_factory=JobResources, description="the worker it needs")


def validate_job(
    job: JobCreate,
    dataset_classes: list[str],
    *,
    max_epochs: int,
    feature_shape: Sequence[int] | None = None,
    dtype: str | None = None,
    test_info: Any = None,
) -> dict[str, Any]:
    """Check a job against its dataset; return the normalised spec to store (seed filled in).

    With the dataset's `feature_shape` and `dtype` ("uint8" / "float32", as `DatasetInfo` has them) the
    augmentation is checked too (images only, colour transforms on uint8); the engine checks it again
    when training starts. `test_info` (classes, feature_shape, dtype: the `DatasetInfo` of
    `job.test_dataset`) checks the test dataset against the job (`check_test_dataset`)."""
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
    check_test_dataset(job, classes, test_info, feature_shape=feature_shape, dtype=dtype)
    spec = job.model_dump(mode="json")
    spec["classes"] = classes
    from core.losses import build_loss  # torch: loaded by the first job validated, not by the import
    from core.similarity import build_similarity

    sim_spec = spec.get("similarity")
    similarity = build_similarity(sim_spec, classes) if sim_spec is not None else None
    check_heads_and_decision(spec, classes)  # model.head, loss.kind and decision go together
    build_loss(spec["loss"], similarity, classes, similarity_spec=sim_spec)
    if spec["training"].get("seed") is None:
        spec["training"]["seed"] = secrets.randbelow(2**31 - 1)
    return spec


def check_test_dataset(
    job: JobCreate,
    classes: list[str],
    test_info: Any = None,
    *,
    feature_shape: Sequence[int] | None = None,
    dtype: str | None = None,
) -> None:
    """SpecError("test_dataset") unless the job's test dataset can give its test rows: not with a test
    split too, not the training dataset itself, and (with its `test_info`) holding every class of the
    job, with the training data's feature shape and dtype when those are known."""
    if job.test_dataset is None:
        return
    split = job.training.split
    if split is not None and split.test > 0:
        raise SpecError("test_dataset", "give a test split (training.split.test) or a test dataset, not both")
    if job.test_dataset == job.dataset:
        raise SpecError(
            "test_dataset", "is the training dataset itself; for held-out rows use training.split"
        )
    if test_info is None:
        return
    missing = [c for c in classes if c not in set(test_info.classes)]
    if missing:
        raise SpecError("test_dataset", f"lacks the job's class(es) {missing[:5]}")
    if feature_shape is not None and list(test_info.feature_shape) != list(feature_shape):
        raise SpecError(
            "test_dataset", f"features {list(test_info.feature_shape)}, the dataset's {list(feature_shape)}"
        )
    if dtype is not None and str(test_info.dtype) != str(dtype):
        raise SpecError("test_dataset", f"stores {test_info.dtype}, the dataset {dtype}")
