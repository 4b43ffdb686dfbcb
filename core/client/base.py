"""The plumbing every resource method of `SimtrainClient` goes through: one httpx.Client, the API key,
timeouts on every call, retries (`core.client.retry`) and the mapping of error answers to exceptions
(`core.client.errors`).

    class MyMixin(BaseClient):
        def thing(self, thing_id: str) -> dict:
            return self._json("GET", f"/v1/things/{thing_id}")

`_send` returns an httpx.Response (streamed when asked; the caller closes it), `_json` the decoded body,
`_pages` every item of a keyset-paginated list.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from core.client.errors import error_from_response, retry_after_seconds, transport_error
from core.client.retry import NO_RETRY, RETRY_STATUSES, RetryPolicy, safe_to_retry

__all__ = ["DEFAULT_TIMEOUT", "DEFAULT_URL", "USER_AGENT", "BaseClient", "new_idempotency_key", "seg"]

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
USER_AGENT = "simtrain-client/0.1"


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key: what makes a retried POST safe (the server answers a repeat with the first
    result)."""
    return f"simtrain-{uuid.uuid4()}"


def seg(value: object) -> str:
    """A path segment: an id as given, escaped so that it cannot leave its place in the URL."""
    return quote(str(value), safe="")


class BaseClient:
    """`base_url` and `api_key`; `timeout` (seconds, every call); `retry` (a RetryPolicy, or None for
    none); `transport` (an httpx transport) or `http` (an httpx.Client to send through, e.g. a
    TestClient: its own base URL is used, and `close()` leaves it open)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.retry = retry or NO_RETRY
        self._headers = headers  # sent with each request: a client handed in is left as it is
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- requests

    def _send(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        idempotent: bool | None = None,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send, retrying what is safe to retry (`retry`: another policy than the client's); a non-2xx
        answer raises its ApiError."""
        policy = retry or self.retry
        kwargs["headers"] = {**self._headers, **(kwargs.get("headers") or {})}
        waited = 0.0
        attempt = 0
        while True:
            request = self._http.build_request(method, path, **kwargs)
            safe = safe_to_retry(method, request.headers, idempotent)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                delay = policy.delay(attempt, None, waited) if safe else None
                if delay is None:
                    raise transport_error(exc) from exc
            else:
                if response.status_code < 400:
                    return response
                delay = None
                if safe and response.status_code in RETRY_STATUSES:
                    delay = policy.delay(attempt, retry_after_seconds(response.headers), waited)
                if delay is None:
                    error = error_from_response(response)
                    response.close()
                    raise error
                response.close()
            time.sleep(delay)
            waited += delay
            attempt += 1

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON body (None for 204 / an empty body)."""
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(self, path: str, params: dict[str, Any], page_size: int) -> Iterator[Any]:
        """Every item of a keyset-paginated list (`items`, `next_cursor`), page by page."""
        cursor = None
        while True:
            query = {**params, "limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = self._json("GET", path, params=query)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _watch(
        self, get: Callable[[], Any], terminal: Collection[str], interval: float, timeout: float | None
    ) -> Iterator[Any]:
        """`get()` now and after every `interval` seconds, until its `status` is terminal or `timeout`
        seconds passed (the last one yielded is then still running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = get()
            yield found
            if found["status"] in terminal:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(max(interval, 0.05))

    def _wait(
        self, get: Callable[[], Any], terminal: Collection[str], poll: float, timeout: float | None, what: str
    ) -> Any:
        """The last of `_watch`: the ended resource; TimeoutError naming `what` when it has not ended."""
        found = None
        for found in self._watch(get, terminal, poll, timeout):
            pass
        if found["status"] not in terminal:
            raise TimeoutError(f"{what} is still {found['status']} after {timeout} s")
        return found

    def _timeout(self, read: float | None) -> httpx.Timeout:
        """The client's timeouts with another read timeout (streams wait longer between bytes)."""
        base = self._http.timeout
        return httpx.Timeout(connect=base.connect, read=read, write=base.write, pool=base.pool)
