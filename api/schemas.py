"""Public (response) schemas of the REST API, separate from what clients send.

What clients send: `core.jobspec.JobCreate` (POST /v1/jobs), `PredictRequest` (or image files), and the
upload form (`file`, `labels` and the text fields of `UploadForm`, read as they stream in by the
route). Every string field has a length limit. The comparison schemas are in `api.schemas_comparisons`;
the cursors (`encode_cursor`, `decode_cursor`) in `api.pagination`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.pagination import decode_cursor, encode_cursor  # their home; still importable from here

__all__ = [
    "ArtifactList",
    "ArtifactPublic",
    "BuiltinDatasetList",
    "BuiltinDatasetPublic",
    "DatasetErrorInfo",
    "DatasetList",
    "DatasetPublic",
    "DatasetReferenceCreate",
    "EpochRecord",
    "ErrorInfo",
    "ErrorResponse",
    "EventList",
    "EventPublic",
    "HealthPublic",
    "JobErrorPublic",
    "JobList",
    "JobMetricsPublic",
    "JobProgress",
    "JobPublic",
    "Message",
    "PredictPublic",
    "PredictRequest",
    "ReadinessError",
    "UploadForm",
    "dataset_request_body",
    "decode_cursor",
    "encode_cursor",
    "predict_request_body",
    "upload_request_body",
]


class ErrorInfo(BaseModel):
    code: str = Field(description="a stable identifier: invalid_input, not_found, unauthorized, ...")
    message: str
    details: Any = Field(
        default=None, description="422: a list of `{field, loc, msg}`, one per problem; else code-specific"
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


class ReadinessError(BaseModel):
    """`GET /readyz` when the database or the broker is down."""

    status: str = Field(max_length=32)
    checks: dict[str, str]
    error: ErrorInfo


class Message(BaseModel):
    message: str = Field(max_length=1000)


class HealthPublic(BaseModel):
    status: str = Field(max_length=32)
    checks: dict[str, str] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- datasets


class DatasetErrorInfo(BaseModel):
    """Why a dataset failed (status `failed`)."""

    code: str = Field(max_length=64)
    message: str
    field: str | None = Field(default=None, max_length=200)


class DatasetPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(max_length=36)
    name: str = Field(max_length=200)
    format: str = Field(max_length=16, description="npz, npy, csv, parquet or zip")
    status: str = Field(default="ready", max_length=16, description="ready, importing or failed")
    classes: list[str]
    class_counts: list[int]
    num_classes: int
    num_samples: int
    feature_shape: list[int] = Field(description="of one sample: (C, H, W) for images")
    dtype: str = Field(default="float32", max_length=16, description="uint8 (images) or float32")
    preprocessing: dict[str, Any] | None = Field(
        default=None,
        description='how images became the stored arrays: {"kind": "image", "size": [H, W], '
        '"resize": "shorter_side" | "stretch" | "pad", "channels": 1 | 3}; null for tabular data',
    )
    sha256: str = Field(max_length=64, description="SHA-256 of the uploaded file")
    size_bytes: int = Field(description="size of the uploaded file")
    stored_bytes: int = Field(description="size of the stored arrays (x.npy, y.npy, meta.json)")
    source_uri: str | None = Field(default=None, max_length=2000)
    error: DatasetErrorInfo | None = None
    created_at: datetime


class UploadForm(BaseModel):
    """The text fields of a dataset upload (multipart/form-data, beside the file part `file`)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    label_column: str | None = Field(default=None, min_length=1, max_length=100)
    image_size: str | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        pattern=r"^\s*\d{1,4}\s*([xX]\s*\d{1,4}\s*)?$",
        description="images: the stored size, one side (32) or HxW (24x32), each side in 8..512 "
        "(default 28 for image files; arrays of images keep their own size)",
    )
    resize: Literal["shorter_side", "stretch", "pad"] | None = Field(
        default=None,
        description="images: stretch to the size (default), resize the shorter side then cut the centre "
        "(shorter_side), or fit inside and letterbox (pad)",
    )


def upload_request_body() -> dict[str, Any]:
    """The OpenAPI requestBody of POST /v1/datasets (multipart/form-data)."""
    schema = UploadForm.model_json_schema()
    binary = {"type": "string", "format": "binary"}
    schema["properties"] = {
        "file": {**binary, "description": "a .zip (image folders), .parquet, .npz, .npy or .csv file"},
        "labels": {**binary, "description": "the labels of an .npy upload: .npy of N labels, or .txt"},
        **schema["properties"],
    }
    schema["required"] = ["file"]
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


class DatasetReferenceCreate(UploadForm):
    """`POST /v1/datasets` with a JSON body: a dataset to import from a URI (`core.dataset_import`), with
    the options an upload has. The worker downloads and converts it; the dataset is `importing` until
    then, `ready` or `failed` (with `error`) after."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(
        min_length=1,
        max_length=2000,
        description="https://, http:// or s3://bucket/key (file:// only when the operator allows it); "
        "loopback and private addresses are refused unless SIMTRAIN_FETCH_ALLOW opens them",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="the file's SHA-256: a mismatch fails the import",
    )
    format: Literal["npz", "csv", "parquet", "zip"] | None = Field(
        default=None, description="how to read the file (default: the URI's extension)"
    )
    image_size: int | str | None = Field(
        default=None, description='images: the stored size, one side (32) or HxW ("24x32"), each in 8..512'
    )

    @field_validator("image_size", mode="before")
    @classmethod
    def _one_side_or_hxw(cls, value: Any) -> Any:
        """A number or a text; its sides are checked with the upload's rule (`parse_image_size`)."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | str)):
            raise ValueError('give one side (32) or HxW ("24x32")')
        return value


def dataset_request_body() -> dict[str, Any]:
    """The OpenAPI requestBody of POST /v1/datasets: the multipart upload or a JSON dataset reference."""
    body = upload_request_body()
    body["content"]["application/json"] = {"schema": DatasetReferenceCreate.model_json_schema()}
    return body


class DatasetList(BaseModel):
    items: list[DatasetPublic]
    next_cursor: str | None = Field(default=None, max_length=200)


class BuiltinDatasetPublic(BaseModel):
    ref: str = Field(max_length=100, description="what to pass as `dataset` in a job, e.g. builtin:digits")
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=1000)
    classes: list[str] | None = None
    num_samples: int | None = None
    feature_shape: list[int] | None = None


class BuiltinDatasetList(BaseModel):
    items: list[BuiltinDatasetPublic]


# -------------------------------------------------------------------------------------------------- jobs


class JobProgress(BaseModel):
    epoch: int = Field(description="epochs completed")
    epochs: int
    fraction: float = Field(ge=0, le=1)
    eta_seconds: float | None = Field(
        default=None, description="estimated from the epoch timings while running"
    )


class JobErrorPublic(BaseModel):
    code: str = Field(max_length=64)
    message: str


class JobPublic(BaseModel):
    id: str = Field(max_length=36)
    status: str = Field(max_length=16)
    dataset: str = Field(max_length=100)
    classes: list[str] = Field(default_factory=list)
    spec: dict[str, Any]
    progress: JobProgress
    latest_metrics: dict[str, Any] | None = None
    final_metrics: dict[str, Any] | None = None
    error: JobErrorPublic | None = None
    attempts: int
    max_attempts: int
    device: str | None = Field(default=None, max_length=32)
    train_seconds: float | None = None
    cancel_requested: bool
    pause_requested: bool = Field(default=False, description="running: it pauses at its next epoch")
    priority: str = Field(default="normal", max_length=8, description="low, normal or high (core.routing)")
    resources: dict[str, Any] = Field(
        default_factory=lambda: {"device": "auto"}, description="`device`: auto, cpu or gpu (core.routing)"
    )
    idempotency_key: str | None = Field(default=None, max_length=200)
    created_at: datetime
    updated_at: datetime
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobList(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = Field(default=None, max_length=200)


class EventPublic(BaseModel):
    id: int
    kind: str = Field(max_length=16, description="state, epoch, warning, ...")
    message: str
    data: dict[str, Any] | None = None
    created_at: datetime


class EventList(BaseModel):
    items: list[EventPublic]
    last_id: int | None = Field(default=None, description="pass as `after` to get the next events")


class EpochRecord(BaseModel):
    epoch: int
    created_at: datetime
    metrics: dict[str, Any]


class JobMetricsPublic(BaseModel):
    job_id: str = Field(max_length=36)
    epochs: list[EpochRecord]
    final: dict[str, Any] | None = None


class ArtifactPublic(BaseModel):
    name: str = Field(max_length=64)
    size_bytes: int
    sha256: str = Field(max_length=64)
    content_type: str = Field(max_length=100)
    created_at: datetime


class ArtifactList(BaseModel):
    items: list[ArtifactPublic]


# ----------------------------------------------------------------------------------------------- predict


class PredictRequest(BaseModel):
    """Either `inputs` (feature rows, or raw pixel values in the dataset's shape) or `images` (base64 PNG /
    JPEG / BMP files, preprocessed as the training images were). Image files can also come as
    multipart/form-data in the field `files`."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[Any] | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        description="rows of feature values: flat (prod(feature_shape) numbers) or nested as the dataset's "
        "feature shape; at most `SIMTRAIN_MAX_PREDICT_ROWS` rows",
    )
    images: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=10_000,
        description="base64-encoded image files; at most `SIMTRAIN_MAX_PREDICT_IMAGES`",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> PredictRequest:
        if (self.inputs is None) == (self.images is None):
            raise ValueError("give either `inputs` (rows) or `images` (base64 files)")
        return self


def predict_request_body() -> dict[str, Any]:
    """The OpenAPI requestBody of POST /v1/jobs/{job_id}/predict: JSON, or image files as multipart."""
    files = {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
    return {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"files": files}, "required": ["files"]}
            },
        },
    }


class PredictPublic(BaseModel):
    classes: list[str]
    probabilities: list[list[float]]
    predictions: list[str]
