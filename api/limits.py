"""Request body bounds, enforced while the body streams in (pure ASGI, nothing is buffered here).

- predictions (`POST .../predict`, JSON rows, base64 images or multipart image files): at most
  `max_predict_bytes` (given, or the app's setting `max_predict_bytes`).
- multipart/form-data (uploads): at most `max_upload_bytes` plus a little multipart overhead; the upload
  route then checks each file itself against `max_upload_bytes` exactly while it streams to disk.
- every other body (JSON): at most `max_json_bytes`.

A declared `Content-Length` over the bound is refused with 413 before a byte is read; a body without one
(chunked) is counted as it arrives and refused as soon as it passes the bound. The refusal is an
`HTTPException(413)` raised from `receive()`, so FastAPI passes it to the one error mapping
(`api/errors.py`), and any spooled upload parts are dropped with the request (nothing left on disk).
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import send_error

__all__ = ["DEFAULT_PREDICT_BYTES", "MULTIPART_OVERHEAD", "BodyLimitMiddleware", "BodyTooLarge"]

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small form fields
DEFAULT_PREDICT_BYTES = 32 * 1024 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, what: str) -> None:
        super().__init__(status_code=413, detail=f"the {what} is larger than the limit of {limit} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_bytes: int,
        max_upload_bytes: int,
        max_predict_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes
        self.max_predict_bytes = max_predict_bytes

    def _predict_bound(self, scope: Scope) -> int:
        if self.max_predict_bytes is not None:
            return self.max_predict_bytes
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        return int(getattr(settings, "max_predict_bytes", DEFAULT_PREDICT_BYTES))

    def _bound(self, scope: Scope) -> tuple[int, str]:
        if scope.get("path", "").rstrip("/").endswith("/predict"):
            return self._predict_bound(scope), "predict body"
        content_type = ""
        for name, value in scope.get("headers", ()):
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
                break
        if content_type.startswith("multipart/form-data"):
            return self.max_upload_bytes + MULTIPART_OVERHEAD, "upload"
        return self.max_json_bytes, "request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit, what = self._bound(scope)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > limit:
            await _reject(send, limit, what)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, what)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _reject(send, limit, what)


async def _reject(send: Send, limit: int, what: str) -> None:
    message = f"the {what} is larger than the limit of {limit} bytes"
    await send_error(send, 413, "payload_too_large", message, {"limit": limit}, {"Connection": "close"})
