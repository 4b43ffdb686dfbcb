"""The client's one exception hierarchy: each error answer of the API becomes its ApiError subclass with
status, code, message, details and the field it names; the CLI prints it as one line naming the field."""

from __future__ import annotations

import httpx
import pytest

from cli.output import error_text
from core.client import (
    ApiError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    SimtrainClient,
    UnavailableError,
    ValidationError,
)
from core.errors import SimtrainError


def _client(status: int, body=None, headers=None, text: str | None = None) -> SimtrainClient:
    def handler(request: httpx.Request) -> httpx.Response:
        if text is not None:
            return httpx.Response(status, text=text, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return SimtrainClient("http://simtrain.test", "k", transport=httpx.MockTransport(handler), retry=None)


def _body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


@pytest.mark.parametrize(
    "status, cls",
    [
        (400, ValidationError), (401, AuthenticationError), (403, PermissionDeniedError),
        (404, NotFoundError), (409, ConflictError), (413, PayloadTooLargeError), (422, ValidationError),
        (429, RateLimitedError), (500, ServerError), (502, ServerError), (503, UnavailableError),
        (418, ApiError),
    ],
)  # fmt: skip
def test_each_status_maps_to_its_class(status, cls):
    with _client(status, _body("some_code", "it went wrong")) as client, pytest.raises(cls) as err:
        client.get_job("j")
    e = err.value
    assert type(e) is cls and isinstance(e, ApiError) and isinstance(e, SimtrainError)
    assert (e.status, e.code, e.message) == (status, "some_code", "it went wrong")
    assert str(e) == f"{status} some_code: it went wrong"


def test_the_field_comes_from_the_details():
    details = [{"field": "loss.kind", "loc": ["loss", "kind"], "msg": "bad tag"}]
    with _client(422, _body("invalid_input", "loss.kind: bad tag", details)) as client:
        with pytest.raises(ValidationError) as err:
            client.create_job({})
    assert err.value.field == "loss.kind" and err.value.details == details
    assert error_text(err.value) == "simtrain: 422 invalid_input: loss.kind: bad tag"

    message = "this key was used with a different request body"
    conflict = _body("conflict", message, {"field": "Idempotency-Key"})
    with _client(409, conflict) as client, pytest.raises(ConflictError) as err:
        client.create_job({})
    assert err.value.field == "Idempotency-Key"
    assert error_text(err.value).endswith("different request body (field: Idempotency-Key)")

    loc_only = _body("invalid_spec", "must be a matrix", [{"loc": ["similarity", "values"], "msg": "x"}])
    with _client(422, loc_only) as client, pytest.raises(ValidationError) as err:
        client.similarity_preview(["a"], {"kind": "matrix"})
    assert err.value.field == "similarity.values"
    assert "(field: similarity.values)" in error_text(err.value)


def test_an_answer_without_the_error_body_still_maps():
    with _client(502, text="<html>bad gateway</html>") as client, pytest.raises(ServerError) as err:
        client.health()
    assert err.value.code == "http_error" and err.value.message == "Bad Gateway" and err.value.field is None
    with _client(429, _body("rate_limited", "slow down"), {"Retry-After": "7"}) as client:
        with pytest.raises(RateLimitedError) as err:
            client.cancel("j")
    assert err.value.retry_after == 7.0


def test_a_multiline_message_is_printed_as_one_line():
    e = ApiError(500, "internal_error", "first\nsecond\n  third")
    assert error_text(e) == "simtrain: 500 internal_error: first second third"
