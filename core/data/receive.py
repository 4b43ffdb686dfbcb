"""Receiving an uploaded file onto local disk: hashed (SHA-256) and bounded as its bytes arrive.

receiver = FileReceiver(path, "flowers.zip", max_bytes=10 << 30)
for chunk in chunks:
    receiver.write(chunk)                 # PayloadTooLarge (413) past max_bytes
upload = receiver.finish()                # UploadedFile(path, filename, sha256, size)

upload = receive_stream(fileobj, path, "flowers.zip", max_bytes)   # the same from a file object
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import PayloadTooLarge

__all__ = ["CHUNK", "FileReceiver", "UploadedFile", "receive_stream"]

CHUNK = 1 << 20


@dataclass(frozen=True)
class UploadedFile:
    """A file part of an upload, received onto local disk."""

    path: Path
    filename: str
    sha256: str
    size: int


class FileReceiver:
    """Writes an upload's bytes to `path` while hashing and counting them; see the module docstring."""

    def __init__(self, path: Path, filename: str, max_bytes: int) -> None:
        self.path, self.filename, self.max_bytes = Path(path), filename, max_bytes
        self.size = 0
        self._digest = hashlib.sha256()
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish() / close()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"the upload is larger than the limit of {self.max_bytes} bytes",
                details={"limit": self.max_bytes},
            )
        self._digest.update(data)
        self._file.write(data)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def finish(self) -> UploadedFile:
        self.close()
        return UploadedFile(self.path, self.filename, self._digest.hexdigest(), self.size)


def receive_stream(src: BinaryIO, path: Path, filename: str, max_bytes: int) -> UploadedFile:
    """Copy a readable file object to `path` in chunks (see FileReceiver)."""
    receiver = FileReceiver(path, filename, max_bytes)
    try:
        while chunk := src.read(CHUNK):
            receiver.write(chunk)
        return receiver.finish()
    finally:
        receiver.close()
