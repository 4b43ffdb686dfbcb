"""A deadline on every answer: 503 `request_timeout` instead of a client left waiting.

A request whose body has arrived but whose response has not started within `seconds` (the setting
`request_timeout_s`; 0 turns it off) is answered 503 with `Retry-After`; what the route still does runs
on in the background and its output is dropped. The case it is for: a database that stops answering
without closing its connections (a frozen server, a network partition). Statements on pooled
connections then block in their worker thread until the server answers again, and no client-side
timeout of the driver ends them; without a deadline every client of the API would wait as long.
A write the route finishes after the deadline is kept: a client retries with the same Idempotency-Key
and gets that job. Request bodies are not timed (an upload takes what the network gives it, within its
size bound), nor is a response once it has started (a server-sent event stream lasts as long as its job).

A route whose work after the body is long by nature (converting a dataset upload) gives itself a longer
bound with `extend_deadline(request.scope, seconds)` before it reads its body (0: no deadline at all).

Pure ASGI on asyncio (uvicorn's loop): the route runs as a task of its own, so that answering does not
wait for a worker thread stuck in a blocking call.

    app.add_middleware(RequestDeadline, seconds=settings.request_timeout_s)
    extend_deadline(request.scope, settings.upload_timeout_s)    # in the upload route
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import send_error

__all__ = ["DEADLINE_SCOPE_KEY", "RequestDeadline", "extend_deadline"]

log = logging.getLogger("simtrain.api")

DEADLINE_SCOPE_KEY = "simtrain.deadline_s"  # a one-item list: this request's bound, in seconds


def extend_deadline(scope: Scope, seconds: float) -> None:
    """Give this request `seconds` (counted from the end of its body) instead of the default; 0: none.
    A no-op when no RequestDeadline is in front of the route."""
    bound = scope.get(DEADLINE_SCOPE_KEY)
    if bound is not None:
        bound[0] = float("inf") if seconds <= 0 else max(bound[0], seconds)


class RequestDeadline:
    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds
        self.abandoned: set[asyncio.Task] = set()  # routes answered for, still running

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        body_done, started = asyncio.Event(), asyncio.Event()
        if not _has_body(scope):
            body_done.set()
        dropped = False

        async def watched_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done.set()
            return message

        async def guarded_send(message: Message) -> None:
            if dropped:
                return
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        bound = scope[DEADLINE_SCOPE_KEY] = [self.seconds]
        task = asyncio.ensure_future(self.app(scope, watched_receive, guarded_send))
        try:
            if not body_done.is_set():
                await _first(task, body_done.wait())  # the body: untimed
            await _until_answered(task, started, bound)
            if task.done() or started.is_set():
                await task  # finished, or a response under way: no deadline
                return
        except BaseException:
            task.cancel()
            raise
        seconds = bound[0]
        dropped = True
        self.abandoned.add(task)
        task.add_done_callback(self._finished)
        route = getattr(scope.get("route"), "path", None) or scope.get("path", "")
        log.warning("%s %s: no answer within %.1fs; answered 503", scope.get("method"), route, seconds)
        await _answer_timeout(send, seconds)

    def _finished(self, task: asyncio.Task) -> None:
        self.abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a request answered with 503 after its deadline failed later: %r", task.exception())


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() not in (b"", b"0")):
            return True
    return False


async def _first(task: asyncio.Task, event: Awaitable[object], timeout: float | None = None) -> None:
    """Wait until `task` is done or `event` has happened, at most `timeout` seconds."""
    waiter = asyncio.ensure_future(event)
    try:
        await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _until_answered(task: asyncio.Task, started: asyncio.Event, bound: list[float]) -> None:
    """Wait until `task` is done or has started its response, at most `bound[0]` seconds from now (the
    bound may grow while waiting: the route extended it)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not (task.done() or started.is_set()):
        left = start + bound[0] - loop.time()
        if left <= 0:
            return
        await _first(task, started.wait(), timeout=None if left == float("inf") else left)


async def _answer_timeout(send: Send, seconds: float) -> None:
    message = f"no answer within {seconds:g}s (the database may be unreachable); retry later"
    retry = str(max(1, math.ceil(seconds)))
    await send_error(send, 503, "request_timeout", message, {"timeout_s": seconds}, {"Retry-After": retry})
