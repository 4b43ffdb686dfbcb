"""Zip archives from untrusted uploads (image folders, and `.npz`, which is a zip): vetted before anything
is decompressed, and bounded again while reading.

`open_zip` checks the central directory: entry count, total uncompressed bytes, per-entry compression
ratio, unsafe names (`..`, absolute, backslash, NUL, drive letters), symlinks and encrypted entries.
`read_entry` never decompresses more than an entry declares nor more than the remaining budget;
`open_entry` gives a bounded stream of one entry (for arrays read in row batches). Every problem is a
`DatasetError("file", reason)`.

    zf, files = open_zip(path, limits)
    with zf:
        budget = [limits.max_uncompressed_bytes]
        data = read_entry(zf, files[0], budget)
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path
from typing import IO, Protocol

from core.errors import DatasetError

__all__ = ["BoundedEntry", "ZipLimits", "open_entry", "open_zip", "read_entry"]

_RATIO_CHECK_MIN_BYTES = 64 * 1024  # tiny entries may compress very well without being bombs
_READ_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError)


class ZipLimits(Protocol):
    max_zip_entries: int
    max_uncompressed_bytes: int
    max_compression_ratio: float


def open_zip(path: Path, limits: ZipLimits) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """Open a zip and vet its central directory; returns the file (non-directory) entries."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise DatasetError("file", f"not a valid zip archive: {e}") from e
    try:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_entries:
            raise DatasetError("file", f"{len(infos)} zip entries, the limit is {limits.max_zip_entries}")
        total = 0
        files = []
        for info in infos:
            _check_entry(info)
            if info.is_dir():
                continue
            total += info.file_size
            if total > limits.max_uncompressed_bytes:
                raise DatasetError(
                    "file", f"archive expands to more than {limits.max_uncompressed_bytes} bytes"
                )
            if info.file_size > _RATIO_CHECK_MIN_BYTES and (
                info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)
            ):
                raise DatasetError("file", f"zip entry {info.filename!r} has a suspicious compression ratio")
            files.append(info)
        return zf, files
    except BaseException:
        zf.close()
        raise


def _check_entry(info: zipfile.ZipInfo) -> None:
    _check_entry_name(getattr(info, "orig_filename", info.filename))  # zipfile cuts names at NUL
    _check_entry_name(info.filename)
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        raise DatasetError("file", f"zip entry {info.filename!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise DatasetError("file", f"zip entry {info.filename!r} is encrypted")


def _check_entry_name(name: str) -> None:
    bad = (
        "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or (len(name) >= 2 and name[1] == ":")
        or any(part == ".." for part in name.split("/"))
    )
    if bad:
        raise DatasetError("file", f"unsafe path in zip: {name!r}")


def read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int]) -> bytes:
    """Decompress one entry, never more than its declared size nor the remaining byte budget."""
    limit = min(info.file_size, budget[0])
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except _READ_ERRORS as e:
        raise DatasetError("file", f"cannot read zip entry {info.filename!r}: {e}") from e
    if len(data) > limit:
        raise DatasetError("file", f"zip entry {info.filename!r} expands beyond its declared or allowed size")
    budget[0] -= len(data)
    return data


class BoundedEntry:
    """A read stream of one zip entry that stops with DatasetError past its declared size or the budget."""

    def __init__(self, stream: IO[bytes], info: zipfile.ZipInfo, budget: list[int]) -> None:
        self._stream, self._info, self._budget = stream, info, budget
        self._left = min(info.file_size, budget[0])

    def read(self, n: int = -1) -> bytes:
        want = self._left + 1 if n < 0 else min(n, self._left + 1)
        try:
            data = self._stream.read(want)
        except _READ_ERRORS as e:
            raise DatasetError("file", f"cannot read zip entry {self._info.filename!r}: {e}") from e
        if len(data) > self._left:
            raise DatasetError(
                "file", f"zip entry {self._info.filename!r} expands beyond its declared or allowed size"
            )
        self._left -= len(data)
        self._budget[0] -= len(data)
        return data

    def readinto(self, buffer) -> int:  # what np.lib.format's header readers may use
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()


def open_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int]) -> BoundedEntry:
    try:
        return BoundedEntry(zf.open(info), info, budget)
    except _READ_ERRORS as e:
        raise DatasetError("file", f"cannot read zip entry {info.filename!r}: {e}") from e
