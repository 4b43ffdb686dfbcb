"""Blob storage seam: datasets, checkpoints and artifacts are stored under '/'-separated keys.

`LocalStorage(root)` (a directory, the default) and `FsspecStorage(url)` (any fsspec URL: `memory://`,
`s3://bucket/prefix` when s3fs is installed, ...) implement the same `Storage` interface. Writes are
atomic: readers see the old object or the complete new one, never a partial file.

    storage = make_storage("/var/lib/simtrain")          # or "file:///...", "memory://x", "s3://b/p"
    storage.put_bytes("jobs/12/model.json", b"{}")
    storage.list("jobs/12/")  -> ["jobs/12/model.json"]

Keys are validated (`validate_key`): relative, '/'-separated, no empty / '.' / '..' parts, no backslash,
no NUL, no drive letter -> ValueError. A missing key raises FileNotFoundError.

Big objects (datasets) never pass through memory: `adopt_file(key, path)` moves a finished local file in
(a rename on the same disk for LocalStorage), `download(key, path)` streams one out, and `local_path(key)`
is the object's own file when the storage is a local directory (None otherwise), for memory-mapping.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO
from uuid import uuid4

__all__ = [
    "FsspecStorage",
    "LocalStorage",
    "Storage",
    "make_storage",
    "s3_storage_options",
    "validate_key",
    "validate_prefix",
]

_TMP_PREFIX = ".tmp-"


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative '/'-separated path, else raise ValueError."""
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if "\x00" in key or "\\" in key:
        raise ValueError(f"storage key {key!r} contains NUL or backslash")
    if key.startswith("/") or (len(key) >= 2 and key[1] == ":"):
        raise ValueError(f"storage key {key!r} must be relative")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"storage key {key!r} has an empty, '.' or '..' part")
    if key.split("/")[-1].startswith(_TMP_PREFIX):
        raise ValueError(f"storage key {key!r} uses the reserved prefix {_TMP_PREFIX!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """A prefix is '' (everything) or a key, optionally ending with '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


class Storage(ABC):
    """Interface; see the module docstring."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def put_file(self, key: str, local_path: str | os.PathLike) -> None: ...

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary read stream; close it (use `with`)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys starting with `prefix` (a plain string prefix of the key)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def adopt_file(self, key: str, local_path: str | os.PathLike) -> None:
        """Store the local file as `key` and remove it (moved where the storage allows, else copied)."""
        self.put_file(key, local_path)
        Path(local_path).unlink(missing_ok=True)

    def download(self, key: str, local_path: str | os.PathLike) -> None:
        """Stream `key` into the local file `local_path` (created or truncated)."""
        with self.open(key) as src, open(local_path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def local_path(self, key: str) -> Path | None:
        """The object's own local file, when the storage is a local directory; None otherwise."""
        return None

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix` (which must be non-empty); returns how many."""
        if not prefix:
            raise ValueError("refusing to delete everything: give a non-empty prefix")
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)


class LocalStorage(Storage):
    """Objects are files under `root` (created if missing)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The local file of `key` (validated)."""
        return self.root.joinpath(*validate_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        self._atomic_write(key, lambda f: f.write(data))

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        with open(local_path, "rb") as src:
            self._atomic_write(key, lambda f: shutil.copyfileobj(src, f, 1 << 20))

    def adopt_file(self, key: str, local_path: str | os.PathLike) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(local_path, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(local_path, target)  # atomic on one file system
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            super().adopt_file(key, local_path)  # another disk: copy, then remove
            return
        _fsync_dir(target.parent)

    def local_path(self, key: str) -> Path | None:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no such key: {key}")
        return path

    def _atomic_write(self, key: str, write) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def open(self, key: str) -> BinaryIO:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no such key: {key}")
        return open(path, "rb")

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int:
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(f"no such key: {key}")
        return path.stat().st_size

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        # walk only the deepest directory the prefix names
        base_parts = prefix.split("/")[:-1] if prefix else []
        base = self.root.joinpath(*base_parts)
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        count = super().delete_prefix(prefix)
        # remove directories left empty under the prefix's directory
        base = self.root.joinpath(*prefix.rstrip("/").split("/"))
        candidates = [base] if base.is_dir() and prefix.endswith("/") else []
        for top in candidates:
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass
        return count


class FsspecStorage(Storage):
    """Objects under an fsspec URL; writes go to a temporary key then move into place."""

    def __init__(self, url: str, **storage_options) -> None:
        import fsspec

        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.root = root.rstrip("/")
        if not self.root:
            raise ValueError(f"storage URL {url!r} needs a path (e.g. memory://simtrain, s3://bucket/prefix)")
        self.fs.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r})"

    def _full(self, key: str) -> str:
        return f"{self.root}/{validate_key(key)}"

    def put_bytes(self, key: str, data: bytes) -> None:
        self._atomic_write(key, lambda f: f.write(data))

    def put_file(self, key: str, local_path: str | os.PathLike) -> None:
        with open(local_path, "rb") as src:
            self._atomic_write(key, lambda f: shutil.copyfileobj(src, f, 1 << 20))

    def _atomic_write(self, key: str, write) -> None:
        target = self._full(key)
        parent = target.rsplit("/", 1)[0]
        tmp = f"{parent}/{_TMP_PREFIX}{uuid4().hex}"
        self.fs.makedirs(parent, exist_ok=True)
        try:
            with self.fs.open(tmp, "wb") as f:
                write(f)
            self.fs.mv(tmp, target)
        except BaseException:
            try:
                self.fs.rm(tmp)
            except (FileNotFoundError, OSError):
                pass
            raise

    def open(self, key: str) -> BinaryIO:
        path = self._full(key)
        if not self.fs.isfile(path):
            raise FileNotFoundError(f"no such key: {key}")
        return self.fs.open(path, "rb")

    def exists(self, key: str) -> bool:
        return bool(self.fs.isfile(self._full(key)))

    def size(self, key: str) -> int:
        path = self._full(key)
        if not self.fs.isfile(path):
            raise FileNotFoundError(f"no such key: {key}")
        return int(self.fs.size(path))

    def list(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        base = "/".join([self.root, *(prefix.split("/")[:-1] if prefix else [])])
        if not self.fs.isdir(base):
            return []
        keys = []
        for path in self.fs.find(base):
            path = "/" + path.lstrip("/") if self.root.startswith("/") else path
            if not path.startswith(self.root + "/"):
                continue
            key = path[len(self.root) + 1 :]
            if key.split("/")[-1].startswith(_TMP_PREFIX) or not key.startswith(prefix):
                continue
            keys.append(key)
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._full(key)
        try:
            if self.fs.isfile(path):
                self.fs.rm(path)
        except FileNotFoundError:
            pass


def make_storage(url_or_path: str | os.PathLike, **storage_options) -> Storage:
    """LocalStorage for a path or file:// URL, FsspecStorage for any other URL scheme.

    `storage_options` go to fsspec; for s3:// without any, `s3_storage_options()` (the settings' endpoint).
    """
    text = os.fspath(url_or_path)
    if "://" not in text:
        return LocalStorage(text)
    scheme, rest = text.split("://", 1)
    if scheme == "file":
        return LocalStorage(rest)
    if scheme in ("s3", "s3a") and not storage_options:
        storage_options = s3_storage_options()
    return FsspecStorage(text, **storage_options)


def s3_storage_options(endpoint_url: str | None = None) -> dict:
    """s3fs options: the S3-compatible server `endpoint_url` (default `SIMTRAIN_S3_ENDPOINT_URL`, if set;
    credentials from the usual AWS variables), and no cached listings, since other processes write too."""
    if endpoint_url is None:
        from core.settings import get_settings

        endpoint_url = get_settings().s3_endpoint_url
    options: dict = {"use_listings_cache": False}
    if endpoint_url:
        options["client_kwargs"] = {"endpoint_url": endpoint_url}
    return options


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
