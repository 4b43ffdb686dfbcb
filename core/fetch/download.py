"""Download a user-given URL to a local file, within the policy, a size bound and a total deadline.

    policy = UrlPolicy.from_settings(settings)
    result = fetch_to_file("https://data.example.com/train.parquet", tmp / "train.parquet", policy=policy,
                           max_bytes=settings.fetch_max_bytes, timeout_s=settings.fetch_timeout_s,
                           sha256="9f86d0...")       # optional: checked while streaming
    result.path, result.size, result.sha256, result.content_type

`fetch_to_file` blocks (a worker task, a thread); inside an event loop, `await fetch_to_file_async(...)`.
The URL and every redirect hop pass `policy.check_url` (SpecError(field) when refused). A failure to fetch
is FetchError(field): unreachable, HTTP status other than 200, over `max_bytes` (the announced size is
checked first, then the counted bytes), past `timeout_s` (one deadline for the whole download, name
lookups and redirects included), too many redirects; a sha256 mismatch is FetchError('sha256'). On any
failure the destination is left untouched and no partial file remains.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

from core.errors import FetchError, SpecError
from core.fetch.file_get import fetch_file
from core.fetch.http_get import fetch_http
from core.fetch.policy import UrlPolicy
from core.fetch.resolve import run_detached
from core.fetch.s3_get import fetch_s3
from core.fetch.sink import bounded_file

__all__ = ["FetchResult", "fetch_to_file", "fetch_to_file_async"]

_SOURCES = {"http": fetch_http, "https": fetch_http, "s3": fetch_s3, "file": fetch_file}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FetchResult:
    path: Path
    size: int
    sha256: str
    content_type: str | None


def fetch_to_file(
    url: str,
    dest: Path,
    *,
    policy: UrlPolicy,
    max_bytes: int,
    timeout_s: float,
    sha256: str | None = None,
    field: str = "uri",
) -> FetchResult:
    """See the module docstring. Runs its own event loop: not to be called inside a running one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            fetch_to_file_async(
                url, dest, policy=policy, max_bytes=max_bytes, timeout_s=timeout_s, sha256=sha256, field=field
            )
        )
    raise RuntimeError("fetch_to_file blocks; inside an event loop, await fetch_to_file_async")


async def fetch_to_file_async(
    url: str,
    dest: Path,
    *,
    policy: UrlPolicy,
    max_bytes: int,
    timeout_s: float,
    sha256: str | None = None,
    field: str = "uri",
) -> FetchResult:
    """The same as `fetch_to_file`, on the running event loop."""
    expected = _expected_sha256(sha256)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with bounded_file(dest, max_bytes=max_bytes, field=field) as sink:
        try:
            async with asyncio.timeout(timeout_s):
                target = await run_detached(policy.check_url, url, field)
                fetch = _SOURCES[target.scheme]
                content_type = await fetch(target, sink, policy=policy, field=field, timeout_s=timeout_s)
        except TimeoutError:
            raise FetchError(field, f"not fetched within {timeout_s:g} s") from None
        size, digest = sink.commit(expected)
    return FetchResult(dest, size, digest, content_type)


def _expected_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower() if isinstance(sha256, str) else ""
    if not _SHA256.match(value):
        raise SpecError("sha256", "must be 64 hexadecimal digits")
    return value
