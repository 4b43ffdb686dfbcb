"""The file leg of `fetch_to_file` (only when the operator lists `file` in `SIMTRAIN_FETCH_ALLOW`): a
regular local file copied with the same size bound and hash; it yields to the loop between chunks, so the
caller's deadline applies.

    content_type = await fetch_file(target, sink, field="uri")
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from pathlib import Path

from core.errors import FetchError
from core.fetch.policy import ParsedUrl
from core.fetch.sink import BoundedFile

__all__ = ["fetch_file"]

CHUNK_BYTES = 1024 * 1024


async def fetch_file(target: ParsedUrl, sink: BoundedFile, *, field: str, **_: object) -> str | None:
    path = Path(target.path)
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer; it is refused below
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as source:
            info = os.fstat(source.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(field, f"{path} is not a regular file")
            sink.expect(info.st_size)
            while chunk := source.read(CHUNK_BYTES):
                sink.write(chunk)
                await asyncio.sleep(0)
    except OSError as exc:
        raise FetchError(field, f"{path}: {exc.strerror or exc}") from None
    return mimetypes.guess_type(path.name)[0]
