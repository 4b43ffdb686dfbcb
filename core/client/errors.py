"""The client's one exception hierarchy, mapped from the API's error body `{"error": {"code", "message",
"details"}}`.

    from core.client import ApiError, ValidationError, NotFoundError
    try:
        client.create_job(spec)
    except ValidationError as e:        # 422
        print(e.field, e.message)       # "loss.kind", "loss.kind: Input tag 'nope' ..."
    except ApiError as e:               # any other answer, and transport failures (status 0)
        print(e.status, e.code)

`error_from_response(response)` picks the class by HTTP status; `transport_error(exc)` wraps an httpx
transport failure. Every class is a `core.errors.SimtrainError`.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from core.errors import SimtrainError

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
    "UnavailableError",
    "ValidationError",
    "error_from_response",
    "field_of_details",
    "retry_after_seconds",
    "transport_error",
]


class ApiError(SimtrainError):
    """An error answer of the API: `status` (HTTP), `code`, `message`, `details` and the `field` it names."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: Any = None
    ) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.code = code
        self.headers = dict(headers or {})

    @property
    def field(self) -> str | None:
        """The dotted field the error concerns (`loss.kind`, `Idempotency-Key`), when the body names one."""
        return field_of_details(self.details)

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (`Retry-After`), if it did."""
        return retry_after_seconds(self.headers)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


class ValidationError(ApiError):
    """400 / 422: the request cannot be used; `field` names what to fix."""


class AuthenticationError(ApiError):
    """401: no API key, an unknown one, or a revoked one."""


class PermissionDeniedError(ApiError):
    """403."""


class NotFoundError(ApiError):
    """404: no such object (another tenant's objects are 404 too)."""


class ConflictError(ApiError):
    """409: the object's state forbids it (an ended job), or an Idempotency-Key reused with another body."""


class PayloadTooLargeError(ApiError):
    """413: the upload or the request body is larger than the server accepts."""


class RateLimitedError(ApiError):
    """429: a quota; `retry_after` says when to try again."""


class ServerError(ApiError):
    """5xx."""


class UnavailableError(ServerError):
    """503: the database or the broker is down; `retry_after` says when to try again."""


class TransportError(ApiError):
    """No answer: the connection failed or broke (`status` 0)."""

    def __init__(self, message: str, code: str = "connection_failed") -> None:
        super().__init__(0, code, message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class RequestTimeoutError(TransportError):
    """No answer within the client's timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="timeout")


_BY_STATUS: dict[int, type[ApiError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: ValidationError,
    429: RateLimitedError,
    503: UnavailableError,
}


def field_of_details(details: Any) -> str | None:
    """`details.field`, or the first `details[i].field` (or its `loc`) of a validation error."""
    if isinstance(details, dict):
        value = details.get("field")
        return str(value) if value else None
    if isinstance(details, list):
        for item in details:
            if isinstance(item, dict):
                if item.get("field"):
                    return str(item["field"])
                if item.get("loc"):
                    return ".".join(str(p) for p in item["loc"])
    return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for a non-2xx answer (reads a streamed body first)."""
    try:
        response.read()
        error = response.json().get("error") or {}
        if not isinstance(error, dict):
            error = {}
    except (ValueError, AttributeError, httpx.HTTPError):
        error = {}
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(
        status,
        str(error.get("code") or "http_error"),
        str(error.get("message") or response.reason_phrase or "request failed"),
        error.get("details"),
        response.headers,
    )


def transport_error(exc: httpx.TransportError) -> TransportError:
    """A TransportError (or RequestTimeoutError) for an httpx transport failure."""
    message = f"{type(exc).__name__}: {exc}".rstrip(": ")
    try:
        message += f" ({exc.request.method} {exc.request.url})"
    except RuntimeError:  # an error raised without its request
        pass
    if isinstance(exc, httpx.TimeoutException):
        return RequestTimeoutError(message)
    return TransportError(message)


def retry_after_seconds(headers: Any) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = None
    if headers:
        value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
