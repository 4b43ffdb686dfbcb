"""The http(s) leg of `fetch_to_file`: a streamed GET that connects to the policy's checked addresses and
follows redirects by hand, each hop checked by the policy again.

    content_type = await fetch_http(target, sink, policy=policy, field="uri", timeout_s=60)

The connection goes to an address the policy checked (`ParsedUrl.pinned_url`); the Host header and the
TLS server name (certificate check included) stay the URL's host. Proxies from the environment are not
used (`trust_env=False`): a proxy would connect to names the policy never saw. The total deadline is the
caller's (`asyncio.timeout`); `timeout_s` bounds each connect / read as well.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urljoin

import httpx

from core.errors import FetchError, SpecError
from core.fetch.policy import ParsedUrl, UrlPolicy
from core.fetch.resolve import run_detached
from core.fetch.sink import BoundedFile

__all__ = ["fetch_http"]

CHUNK_BYTES = 256 * 1024
_HEADERS = {"User-Agent": "simtrain-fetch", "Accept-Encoding": "identity"}


async def fetch_http(
    target: ParsedUrl, sink: BoundedFile, *, policy: UrlPolicy, field: str, timeout_s: float
) -> str | None:
    """Stream `target` into `sink`; the response's Content-Type. FetchError / SpecError on failure."""
    try:
        async with httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=timeout_s, headers=_HEADERS
        ) as client:
            return await _follow(client, target, sink, policy=policy, field=field)
    except httpx.TimeoutException:
        raise FetchError(field, f"{target.host}: timed out") from None
    except httpx.HTTPError as exc:
        raise FetchError(field, f"{target.host}: {exc or type(exc).__name__}") from None


async def _follow(
    client: httpx.AsyncClient, target: ParsedUrl, sink: BoundedFile, *, policy: UrlPolicy, field: str
) -> str | None:
    for _hop in range(policy.max_redirects + 1):
        async with _get(client, target, field) as response:
            if response.is_redirect:
                target = await _redirect_target(policy, target, response.headers["location"], field)
                continue
            if response.status_code != 200:
                raise FetchError(field, f"{target.host} answered HTTP {response.status_code}")
            sink.expect(_content_length(response))
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                sink.write(chunk)
            return response.headers.get("content-type")
    raise FetchError(field, f"more than {policy.max_redirects} redirects")


@asynccontextmanager
async def _get(client: httpx.AsyncClient, target: ParsedUrl, field: str) -> AsyncIterator[httpx.Response]:
    """The streamed response from the first checked address that accepts the connection."""
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    failure: Exception | None = None
    for address in target.addresses:
        request = client.build_request(
            "GET", target.pinned_url(address), headers={"Host": target.host_header()}, extensions=extensions
        )
        try:
            response = await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
            continue
        try:
            yield response
        finally:
            await response.aclose()
        return
    raise FetchError(field, f"cannot connect to {target.host}: {failure}")


async def _redirect_target(policy: UrlPolicy, origin: ParsedUrl, location: str, field: str) -> ParsedUrl:
    """The next hop, checked by the policy like the first one; only to http(s)."""
    try:
        target = await run_detached(policy.check_url, urljoin(origin.url, location), field)
    except SpecError as exc:
        raise SpecError(field, f"redirected to a refused URL: {exc.reason}") from None
    if target.scheme not in ("http", "https"):
        raise SpecError(field, f"redirected to a {target.scheme} URL; refused")
    return target


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() else None
