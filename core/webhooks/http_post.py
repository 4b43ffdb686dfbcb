"""One signed POST of a webhook delivery, bounded in every way a receiver could stretch it.

    attempt = post_signed(target, policy=UrlPolicy.from_settings(settings), settings=settings)
    attempt.status_code, attempt.error, attempt.duration_ms       # core.webhooks.state.Attempt

- The URL passes `core.webhooks.urls.check_webhook_url` again first (the allow-list of `core.fetch`), and
  the connection goes to one of the addresses that check resolved (`ParsedUrl.pinned_url`; the Host header
  and the TLS server name stay the URL's host), so a name that resolves elsewhere now cannot move it.
- Time: `webhook_connect_timeout_s` to connect, `webhook_timeout_s` for each read and for the whole attempt
  (name lookup, connect, upload, answer), whatever the receiver does (no answer, a trickle of bytes).
- Size: at most MAX_RESPONSE_BYTES of the answer are read (a 10 MB body is cut off and the connection
  closed); redirects are not followed: a 3xx is a failed attempt. No proxy from the environment.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from core.db.types import now as utcnow
from core.errors import SimtrainError
from core.fetch import ParsedUrl, UrlPolicy
from core.fetch.resolve import run_detached
from core.settings import Settings
from core.webhooks.signing import signature_headers
from core.webhooks.state import Attempt, DeliveryTarget
from core.webhooks.urls import check_webhook_url

__all__ = ["MAX_RESPONSE_BYTES", "body_bytes", "post_signed"]

MAX_RESPONSE_BYTES = 4096
_HEADERS = {
    "User-Agent": "simtrain-webhooks",
    "Content-Type": "application/json",
    "Accept-Encoding": "identity",
}


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The body of every attempt of a delivery: its payload as compact JSON with sorted keys."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def post_signed(target: DeliveryTarget, *, policy: UrlPolicy, settings: Settings) -> Attempt:
    """Send one attempt (blocking: runs its own event loop) and say how it went; never raises for what
    the receiver or the network did."""
    at, start = utcnow(), time.monotonic()
    body = body_bytes(target.payload)
    headers = _HEADERS | signature_headers(target.secret, target.msg_id, int(time.time()), body)
    try:
        status, error = asyncio.run(_post(target.url, body, headers, policy, settings))
    except TimeoutError:
        status, error = None, f"no answer within {settings.webhook_timeout_s:g} s"
    except httpx.TimeoutException as exc:
        status, error = None, f"timed out ({type(exc).__name__})"
    except httpx.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"[:500]
    except SimtrainError as exc:  # the URL no longer passes the allow-list
        status, error = None, f"refused: {exc.message}"[:500]
    return Attempt(status, error, int((time.monotonic() - start) * 1000), at)


async def _post(
    url: str, body: bytes, headers: dict[str, str], policy: UrlPolicy, settings: Settings
) -> tuple[int, str | None]:
    timeout = httpx.Timeout(settings.webhook_timeout_s, connect=settings.webhook_connect_timeout_s)
    async with asyncio.timeout(settings.webhook_timeout_s):
        target = await run_detached(check_webhook_url, policy, url, "url")
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False, timeout=timeout) as client:
            return await _send_pinned(client, target, body, headers)


async def _send_pinned(
    client: httpx.AsyncClient, target: ParsedUrl, body: bytes, headers: dict[str, str]
) -> tuple[int, str | None]:
    """POST to the first checked address that accepts the connection; (status, error or None)."""
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    failure: Exception | None = None
    for address in target.addresses:
        request = client.build_request(
            "POST", target.pinned_url(address), content=body,
            headers=headers | {"Host": target.host_header()}, extensions=extensions,
        )  # fmt: skip
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:  # nothing was sent: the next address may answer
            failure = exc
            continue
        try:
            excerpt = await _read_bounded(response)
        finally:
            await response.aclose()
        return response.status_code, _error_of(response, excerpt)
    raise httpx.ConnectError(f"cannot connect to {target.host}: {failure}")


async def _read_bounded(response: httpx.Response) -> bytes:
    """At most MAX_RESPONSE_BYTES of the body; the rest is never read (the connection is closed)."""
    data = b""
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= MAX_RESPONSE_BYTES:
            break
    return data[:MAX_RESPONSE_BYTES]


def _error_of(response: httpx.Response, excerpt: bytes) -> str | None:
    code = response.status_code
    if 200 <= code < 300:
        return None
    if 300 <= code < 400:
        return f"HTTP {code}: redirects are not followed (location {response.headers.get('location', '')[:200]!r})"
    text = excerpt.decode("utf-8", "replace").strip()[:200]
    return f"HTTP {code}" + (f": {text}" if text else "")
