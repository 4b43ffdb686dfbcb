"""A bounded local directory of datasets downloaded from remote storage, so they can be memory-mapped.

Each entry is a directory named by its key (dataset id + sha256), filled once: the files are
downloaded into a temporary directory beside it, then renamed into place (atomic; a concurrent
download of the same entry just loses the race and is dropped). Using an entry touches it; before a
download, the least recently used entries are removed until the new one fits in `max_bytes`. An entry
removed while another process still maps its files stays readable there (POSIX unlink semantics).

    cache = LocalCache(Path("~/.simtrain/cache/datasets"), max_bytes=20 << 30)
    directory = cache.get("3f2a...-9c1e...", {"x.npy": download_x, "y.npy": download_y}, total_bytes)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["CacheTooSmall", "LocalCache"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_TMP_PREFIX = ".tmp-"
_STALE_TMP_S = 24 * 3600


class CacheTooSmall(Exception):
    """One entry is larger than the whole cache."""


def _entry_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


class LocalCache:
    """See the module docstring."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes

    def get(self, key: str, files: Mapping[str, Callable[[Path], None]], total_bytes: int) -> Path:
        """The directory of entry `key`, downloading it first when missing: `files[name](path)` writes
        file `name` to `path`. `total_bytes` is what the entry will take (for eviction)."""
        if not _KEY.match(key):
            raise ValueError(f"bad cache key {key!r}")
        target = self.root / key
        if target.is_dir():
            os.utime(target)  # most recently used
            return target
        if total_bytes > self.max_bytes:
            raise CacheTooSmall(f"{total_bytes} bytes do not fit in the local cache of {self.max_bytes}")
        self.root.mkdir(parents=True, exist_ok=True)
        self._evict(total_bytes)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.root))
        try:
            for name, write in files.items():
                write(tmp / name)
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not the race with another download of the same entry
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _evict(self, incoming: int) -> None:
        """Remove the least recently used entries until `incoming` more bytes fit (and the leftovers of
        downloads that died more than a day ago)."""
        entries = []
        for path in self.root.iterdir():
            if not path.is_dir():
                continue
            if not path.name.startswith(_TMP_PREFIX):
                entries.append(path)
            elif time.time() - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)
        entries.sort(key=lambda p: p.stat().st_mtime)
        used = sum(_entry_bytes(p) for p in entries)
        while entries and used + incoming > self.max_bytes:
            oldest = entries.pop(0)
            used -= _entry_bytes(oldest)
            shutil.rmtree(oldest, ignore_errors=True)
