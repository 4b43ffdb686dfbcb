"""Where a download lands: a temporary file next to the destination that counts and hashes what it is
given, refuses to grow past the bound, and becomes the destination only when complete and verified.

    with bounded_file(dest, max_bytes=10 * MiB, field="uri") as sink:
        sink.expect(content_length)        # an announced size over the bound fails before any byte
        sink.write(chunk)                   # ... for every chunk
        size, sha256 = sink.commit("ab12...")  # FetchError('sha256', ...) on a mismatch
    # leaving the block without a commit (any exception) removes the temporary file: no partial file
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import FetchError

__all__ = ["BoundedFile", "bounded_file"]


class BoundedFile:
    """See the module docstring; made by `bounded_file`."""

    def __init__(self, dest: Path, *, max_bytes: int, field: str) -> None:
        self.dest, self.max_bytes, self.field = dest, max_bytes, field
        self.size = 0
        self.committed = False
        self._hash = hashlib.sha256()
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by commit / discard
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
        )
        self.temp_path = Path(self._file.name)

    def expect(self, size: int | None) -> None:
        """Refuse an announced size (Content-Length, an object's size) over the bound."""
        if size is not None and size > self.max_bytes:
            bound = self.max_bytes
            raise FetchError(self.field, f"the resource is {size} bytes, over the {bound}-byte bound")

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise FetchError(self.field, f"the resource is larger than the {self.max_bytes}-byte bound")
        self._hash.update(chunk)
        self._file.write(chunk)

    def commit(self, expected_sha256: str | None) -> tuple[int, str]:
        """Verify the sha256 (when one is expected) and move the file to its destination."""
        digest = self._hash.hexdigest()
        if expected_sha256 is not None and digest != expected_sha256:
            message = f"the downloaded file's sha256 is {digest}, expected {expected_sha256}"
            raise FetchError("sha256", message)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self.temp_path, self.dest)
        self.committed = True
        return self.size, digest

    def discard(self) -> None:
        self._file.close()
        self.temp_path.unlink(missing_ok=True)


@contextmanager
def bounded_file(dest: Path, *, max_bytes: int, field: str) -> Iterator[BoundedFile]:
    sink = BoundedFile(dest, max_bytes=max_bytes, field=field)
    try:
        yield sink
    finally:
        if not sink.committed:
            sink.discard()
