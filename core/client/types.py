"""The JSON the API answers, as TypedDicts: results stay plain dicts (`job["status"]`), and a type checker
knows their keys. Times are ISO 8601 strings; ids are UUID strings.

    from core.client.types import Job
    def done(job: Job) -> bool: ...
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "Artifact",
    "BuiltinDataset",
    "Comparison",
    "ComparisonChild",
    "ComparisonPage",
    "ComparisonProgress",
    "ComparisonSummary",
    "ComparisonVariant",
    "Dataset",
    "DatasetError",
    "DatasetPage",
    "EpochRecord",
    "Event",
    "EventPage",
    "GuidanceWarning",
    "Health",
    "Job",
    "JobError",
    "JobMetrics",
    "JobPage",
    "JobProgress",
    "LossGuidance",
    "Prediction",
    "SimilarityPreview",
]


class Health(TypedDict, total=False):
    status: str
    checks: dict[str, str]


class DatasetError(TypedDict):
    code: str
    message: str
    field: str | None


class Dataset(TypedDict):
    id: str
    name: str
    format: str
    status: str  # ready, importing (a dataset given by URI) or failed (see `error`)
    classes: list[str]
    class_counts: list[int]
    num_classes: int
    num_samples: int
    feature_shape: list[int]
    dtype: str  # uint8 (images) or float32
    preprocessing: dict[str, Any] | None  # images: {"kind": "image", "size", "resize", "channels"}
    sha256: str
    size_bytes: int
    stored_bytes: int
    source_uri: str | None
    error: DatasetError | None
    created_at: str


class DatasetPage(TypedDict):
    items: list[Dataset]
    next_cursor: str | None


class BuiltinDataset(TypedDict):
    ref: str
    name: str
    description: str
    classes: list[str] | None
    num_samples: int | None
    feature_shape: list[int] | None


class JobProgress(TypedDict):
    epoch: int
    epochs: int
    fraction: float
    eta_seconds: float | None


class JobError(TypedDict):
    code: str
    message: str


class Job(TypedDict):
    id: str
    status: str
    dataset: str
    classes: list[str]
    spec: dict[str, Any]
    progress: JobProgress
    latest_metrics: dict[str, Any] | None
    final_metrics: dict[str, Any] | None
    error: JobError | None
    attempts: int
    max_attempts: int
    device: str | None
    train_seconds: float | None
    cancel_requested: bool
    pause_requested: bool
    priority: str
    resources: dict[str, Any]
    idempotency_key: str | None
    created_at: str
    updated_at: str
    dispatched_at: str | None
    started_at: str | None
    finished_at: str | None


class JobPage(TypedDict):
    items: list[Job]
    next_cursor: str | None


class Event(TypedDict):
    id: int
    kind: str
    message: str
    data: dict[str, Any] | None
    created_at: str


class EventPage(TypedDict):
    items: list[Event]
    last_id: int | None


class EpochRecord(TypedDict):
    epoch: int
    created_at: str
    metrics: dict[str, Any]


class JobMetrics(TypedDict):
    job_id: str
    epochs: list[EpochRecord]
    final: dict[str, Any] | None


class Artifact(TypedDict):
    name: str
    size_bytes: int
    sha256: str
    content_type: str
    created_at: str


class Prediction(TypedDict):
    classes: list[str]
    probabilities: list[list[float]]
    predictions: list[str]


class ComparisonProgress(TypedDict):
    total: int
    queued: int
    running: int
    paused: int
    succeeded: int
    failed: int
    cancelled: int
    fraction: float


class ComparisonChild(TypedDict):
    job_id: str
    variant: str
    seed: int
    status: str
    epoch: int
    epochs: int
    metrics: dict[str, Any] | None
    error: JobError | None


class ComparisonVariant(TypedDict):
    name: str
    loss: dict[str, Any]


class ComparisonSummary(TypedDict):
    id: str
    status: str
    dataset: str
    classes: list[str]
    variants: list[ComparisonVariant]
    seeds: list[int]
    progress: ComparisonProgress
    metadata: dict[str, str] | None
    idempotency_key: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


class Comparison(ComparisonSummary):
    spec: dict[str, Any]
    children: list[ComparisonChild]
    report: dict[str, Any] | None
    report_url: str | None


class ComparisonPage(TypedDict):
    items: list[ComparisonSummary]
    next_cursor: str | None


class SimilarityPreview(TypedDict):
    classes: list[str]
    matrix: list[list[float]]
    values: list[float] | None
    cyclic_period: float | None
    groups: list[int] | None
    guidance: LossGuidance | None


class GuidanceWarning(TypedDict):
    code: str  # slow_alone | equals_cross_entropy | similarity_clipped
    message: str


class LossGuidance(TypedDict):
    """What a loss trains each class towards (`core.losses.guidance`), in a similarity preview."""

    loss: str
    targets: list[list[float]] | None
    targets_kind: str | None  # "distribution" | "weights" | None
    warnings: list[GuidanceWarning]
    equivalent_to_cross_entropy: bool
