"""The one exception hierarchy of simtrain.

Every error the library or the service raises on purpose is a `SimtrainError`. Each class carries the
HTTP status and a stable machine-readable `code`; `api/errors.py` maps them to JSON bodies in one place,
and the worker stores `code` and `message` on a failed job.

    raise SpecError("similarity.values", "must be a 4 x 4 matrix, got 3 rows")
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SimtrainError",
    "InvalidInput",
    "SpecError",
    "DatasetError",
    "FetchError",
    "NotFound",
    "Conflict",
    "Unauthorized",
    "PayloadTooLarge",
    "RateLimited",
    "ServiceUnavailable",
    "TrainingError",
]


class SimtrainError(Exception):
    """Base class. `status` is the HTTP status, `code` a stable identifier for clients."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return body


class InvalidInput(SimtrainError):
    """Input that is well-formed JSON but wrong; always names the field."""

    status = 422
    code = "invalid_input"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", details=[{"loc": field.split("."), "msg": message}])
        self.field = field
        self.reason = message


class SpecError(InvalidInput):
    """A similarity, loss, model or training spec that cannot be used (field path like 'loss.alpha')."""

    code = "invalid_spec"


class DatasetError(InvalidInput):
    """An uploaded or referenced dataset that cannot be read or used."""

    code = "invalid_dataset"


class FetchError(InvalidInput):
    """A user-given URL that passed the policy but could not be fetched: unreachable, an HTTP error, larger
    than the bound, slower than the deadline, too many redirects, or a sha256 that does not match (then
    the field is `sha256`)."""

    code = "fetch_failed"


class NotFound(SimtrainError):
    status = 404
    code = "not_found"


class Conflict(SimtrainError):
    status = 409
    code = "conflict"


class Unauthorized(SimtrainError):
    status = 401
    code = "unauthorized"


class PayloadTooLarge(SimtrainError):
    status = 413
    code = "payload_too_large"


class RateLimited(SimtrainError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int = 5, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


class ServiceUnavailable(SimtrainError):
    status = 503
    code = "service_unavailable"


class TrainingError(SimtrainError):
    """A job that cannot train (NaN loss, out of memory, unreadable data). Not retried."""

    status = 422
    code = "training_failed"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
