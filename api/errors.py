"""Every error response of the API, mapped in one place.

The body is always `{"error": {"code", "message", "details"}}`:

- `core.errors.SimtrainError` subclasses keep their `status` and `code` (429 adds `Retry-After`).
- Request validation errors (pydantic) are 422 `invalid_input`; `details` lists each problem with the
  dotted `field` it concerns (`loss.kind`, `training.epochs`, `inputs`), and `message` names the first.
- SQLAlchemy connection problems are 503 `database_unavailable` (fast: the engine has short timeouts).
- Starlette/FastAPI HTTP exceptions (404 for unknown routes, 405, 413 from the body limit) keep their status.
- Anything else is a 500 `internal_error` without internals in the body (logged with its traceback).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import RateLimited, SimtrainError
from core.jsonsafe import json_safe

__all__ = [
    "document_error_responses",
    "error_body",
    "error_response",
    "field_of",
    "install_error_handlers",
    "send_error",
    "validation_details",
]

log = logging.getLogger("simtrain.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "service_unavailable",
}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = error_body(code, message, json_safe(details, nonfinite="str"))
    return JSONResponse(body, status_code=status, headers=headers)


async def send_error(
    send: Any,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> None:
    """The same body as `error_response`, sent by a pure ASGI middleware through its `send`."""
    body = json.dumps(error_body(code, message, json_safe(details, nonfinite="str"))).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


_LOC_ROOTS = ("body", "query", "path", "header", "cookie")


def field_of(loc: tuple | list, error_type: str = "", ctx: dict | None = None) -> str:
    """The dotted field a pydantic error location refers to, without the request part ('body')."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOC_ROOTS:
        parts = parts[1:]
    if error_type in ("union_tag_invalid", "union_tag_not_found") and ctx and ctx.get("discriminator"):
        parts.append(str(ctx["discriminator"]).strip("'\""))
    return ".".join(parts) or "body"


_VALIDATOR_LOC = ("function-", "json-or-python[", "lax-or-strict[", "tagged-union[", "chain[")


def _without_tags(loc: tuple | list, body: Any) -> list:
    """Drop what pydantic adds to a location inside tagged unions (the tag, validator names), so the
    location is a path into the request: ('body', 'loss', 'simloss', 'x') -> ('body', 'loss', 'x')."""
    parts = list(loc)
    out: list = []
    start = 0
    if parts and parts[0] == "body":
        out.append("body")
        start = 1
    current: Any = body if start else None
    for part in parts[start:]:
        if isinstance(part, str) and part.startswith(_VALIDATOR_LOC):
            continue
        if isinstance(current, dict):
            if part in current:
                current = current[part]
                out.append(part)
                continue
            if isinstance(part, str) and part in [v for v in current.values() if isinstance(v, str)]:
                continue  # the discriminator's value: not a field
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            out.append(part)
            continue
        current = None
        out.append(part)
    return out


def validation_details(errors: list[dict[str, Any]], body: Any = None) -> list[dict[str, Any]]:
    out = []
    for err in errors[:50]:
        ctx = err.get("ctx") or {}
        field = field_of(_without_tags(err.get("loc", ()), body), err.get("type", ""), ctx)
        msg = str(err.get("msg", "invalid"))
        out.append({"field": field, "loc": field.split("."), "msg": msg, "type": err.get("type", "")})
    return out


async def _simtrain_error(request: Request, exc: SimtrainError) -> JSONResponse:
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, int(exc.retry_after)))}
    details = exc.details
    if isinstance(details, list):  # InvalidInput: add the dotted field next to its loc
        details = [
            {"field": ".".join(str(p) for p in d["loc"]), **d} if isinstance(d, dict) and "loc" in d else d
            for d in details
        ]
    if exc.status >= 500:
        log.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.message)
    return error_response(exc.status, exc.code, exc.message, details, headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = validation_details(list(exc.errors()), getattr(exc, "body", None))
    first = details[0] if details else {"field": "body", "msg": "invalid request"}
    return error_response(422, "invalid_input", f"{first['field']}: {first['msg']}", details)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "http_error")
    detail = exc.detail
    if isinstance(detail, str):
        message = detail
    else:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "error"
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    if status == 405:
        allowed = _allowed_methods(request)
        if allowed:  # Starlette names only the first route of the path; RFC 9110: all of them
            headers["Allow"] = ", ".join(allowed)
    return error_response(status, code, message, None if isinstance(detail, str) else detail, headers or None)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the path a 405 was for. Starlette names only the first route that matched the path;
    RFC 9110 wants them all. A documented path answers from the OpenAPI document (the most specific
    template: `/v1/datasets/builtin` before `/v1/datasets/{dataset_id}`), any other by asking the routes."""
    import re

    from starlette.routing import Match

    path = request.url.path
    best: tuple[int, list[str]] | None = None
    try:
        paths = request.app.openapi().get("paths", {})
    except Exception:  # noqa: BLE001 - no document: ask the routes
        paths = {}
    for template, operations in paths.items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            params = template.count("{")
            if best is None or params < best[0]:
                best = (params, sorted(m.upper() for m in operations if m.upper() in _METHODS))
    if best is not None:
        return best[1]
    allowed = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        for route in request.app.router.routes:
            try:
                match, _ = route.matches(probe)
            except Exception:  # noqa: BLE001, S112 - a route that cannot answer the probe does not allow it
                continue
            if match == Match.FULL:
                allowed.append(method)
                break
    return allowed


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        503, "database_unavailable", "the database is unavailable; retry later", None, {"Retry-After": "5"}
    )


async def _dbapi_error(request: Request, exc: DBAPIError) -> JSONResponse:
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return await _database_error(request, exc)
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SimtrainError, _simtrain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    app.add_exception_handler(Exception, _unexpected)


# ------------------------------------------------------------------------------------- OpenAPI documentation

_ERROR_DESCRIPTIONS = {
    "400": "the body could not be parsed (for example, JSON that is not UTF-8)",
    "401": "missing, unknown or revoked API key",
    "404": "no such object for this tenant (another tenant's objects are 404 too)",
    "413": "the body is larger than SIMTRAIN_MAX_JSON_BYTES / SIMTRAIN_MAX_UPLOAD_BYTES",
    "422": "invalid input; `details[].field` / `details[].loc` name each field",
    "503": "the database is unavailable; retry after Retry-After seconds",
}
_WRITE_METHODS = ("post", "put", "patch")


def document_error_responses(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI document tell the truth about errors (in place; returns it).

    Every error status has the one body `ErrorResponse` (FastAPI's `HTTPValidationError` for 422 is not what
    this API sends), and each /v1 operation lists the errors every such route can answer: 401 (the key),
    422 (when it takes parameters or a body), 503 (database down), 404 (when the path names an object),
    and 400 / 413 (when it takes a body)."""
    from api.schemas import ErrorResponse, ReadinessError

    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorResponse, ReadinessError):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}

    for path, operations in openapi.get("paths", {}).items():
        for method, op in operations.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            if path.startswith("/v1/"):
                wanted = ["401", "503"]
                if op.get("parameters") or op.get("requestBody"):
                    wanted.append("422")
                if "{" in path:
                    wanted.append("404")
                if method in _WRITE_METHODS and op.get("requestBody"):
                    wanted += ["400", "413"]
                for code in wanted:
                    responses.setdefault(code, {"description": _ERROR_DESCRIPTIONS[code]})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                if path == "/readyz" and code == "503":
                    response["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ReadinessError"}}
                    }
                else:
                    response["content"] = dict(error_content)
                if response.get("description") in (None, "", "Validation Error"):
                    response["description"] = _ERROR_DESCRIPTIONS.get(code, "error")
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and unused not in json.dumps(openapi["paths"]):
            del components[unused]
    return openapi
