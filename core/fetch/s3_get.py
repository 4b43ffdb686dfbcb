"""The s3 leg of `fetch_to_file`: the object's size from `info()` first, then one streamed GET, through
s3fs (fsspec) on the caller's event loop.

    content_type = await fetch_s3(target, sink, policy=policy, field="uri", timeout_s=60)

Credentials come from the usual AWS sources (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, a profile, an
instance role); `SIMTRAIN_S3_ENDPOINT_URL` points at an S3-compatible server, whose addresses the policy
checked. botocore connects to the endpoint by name: a name that resolves elsewhere between the check and
the connection (DNS rebinding) is the residual risk; the endpoint is the operator's, not the user's.
"""

from __future__ import annotations

from typing import Any

from core.errors import FetchError
from core.fetch.policy import ParsedUrl, UrlPolicy
from core.fetch.sink import BoundedFile

__all__ = ["fetch_s3"]

CHUNK_BYTES = 1024 * 1024


async def fetch_s3(
    target: ParsedUrl, sink: BoundedFile, *, policy: UrlPolicy, field: str, timeout_s: float
) -> str | None:
    """Stream `s3://{target.host}/{target.path}` into `sink`; the object's content type."""
    import s3fs
    from botocore.exceptions import BotoCoreError, ClientError

    fs = s3fs.S3FileSystem(
        asynchronous=True,
        skip_instance_cache=True,
        endpoint_url=policy.s3_endpoint_url or None,
        config_kwargs={
            "connect_timeout": timeout_s,
            "read_timeout": timeout_s,
            "retries": {"max_attempts": 2},
        },
    )
    name = f"s3://{target.host}/{target.path}"
    session = await fs.set_session()
    try:
        return await _copy(fs, f"{target.host}/{target.path}", sink, field)
    except FileNotFoundError:
        raise FetchError(field, f"no object {name}") from None
    except PermissionError:
        raise FetchError(field, f"access to {name} denied") from None
    except (OSError, BotoCoreError, ClientError) as exc:
        raise FetchError(field, f"{name}: {exc}") from None
    finally:
        await session.close()


async def _copy(fs: Any, path: str, sink: BoundedFile, field: str) -> str | None:
    info = await fs._info(path)  # s3fs's async API: the underscore methods
    if info.get("type") != "file":
        raise FileNotFoundError(path)
    sink.expect(int(info.get("size") or 0))
    stream = await fs.open_async(path, "rb")
    try:
        while chunk := await stream.read(CHUNK_BYTES):
            sink.write(chunk)
    finally:
        await stream.close()
    return info.get("ContentType")
