"""The typed Python client of the simtrain REST API (httpx): every resource, one exception hierarchy,
retries that are safe, a timeout on every call.

    from core.client import SimtrainClient, ApiError, ValidationError
    with SimtrainClient("http://127.0.0.1:8000", api_key) as client:
        ds = client.upload_dataset("flowers.zip", progress=lambda sent, total: ...)
        job = client.create_job({"dataset": ds["id"], "loss": {"kind": "simloss"}})
        for event in client.stream_events(job["id"]): ...
        job = client.wait(job["id"])
        client.download_artifact(job["id"], "model.onnx", "model.onnx")

Resources: datasets (`upload_dataset`, `register_uri`, `wait_dataset`, `watch_dataset`, `list_datasets`,
`datasets_page`, `get_dataset`, `delete_dataset`, `builtin_datasets`), jobs (`create_job`, `list_jobs`,
`iter_jobs`, `get_job`, `cancel`, `pause`, `resume`, `delete_job`, `events`, `stream_events`, `metrics`, `wait`), artifacts
(`list_artifacts`, `download_artifact`), checkpoints (`list_checkpoints`, `download_checkpoint`),
`predict` (feature rows), `predict_images` (PNG / JPEG files),
comparisons (`create_comparison`, `list_comparisons`, `get_comparison`, `cancel_comparison`,
`delete_comparison`, `watch_comparison`, `wait_comparison`, `comparison_report`), tuning studies
(`create_tuning`, `get_tuning`, `list_tuning`, `iter_tuning`, `cancel_tuning`, `delete_tuning`,
`watch_tuning`, `wait_tuning`, `tuning_report`), `similarity_preview` /
`similarity_preview_png`, `health` / `ready`. Results are dicts typed by `core.client.types`.

Every non-2xx answer raises an `ApiError` subclass (`ValidationError` 400/422, `AuthenticationError` 401,
`NotFoundError` 404, `ConflictError` 409, `PayloadTooLargeError` 413, `RateLimitedError` 429,
`UnavailableError` 503, ...) with `status`, `code`, `message`, `details` and `field`; no answer at all is
a `TransportError` (`RequestTimeoutError` after the timeout). 429, 503 and connection failures are
retried with exponential backoff honouring `Retry-After` (`RetryPolicy`: bounded count and total wait),
for idempotent requests and those carrying an Idempotency-Key (job and comparison creation always do).
Statuses: `core.status` (JOB_TERMINAL, COMPARISON_TERMINAL).
"""

from core.client.base import DEFAULT_TIMEOUT, DEFAULT_URL
from core.client.client import SimtrainClient
from core.client.errors import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnavailableError,
    ValidationError,
)
from core.client.retry import RetryPolicy
from core.client.tuning import TuningMixin, TuningStudy, TuningStudySummary

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "SimtrainClient",
    "TransportError",
    "TuningMixin",
    "TuningStudy",
    "TuningStudySummary",
    "UnavailableError",
    "ValidationError",
]
