"""Training checkpoints in a `Storage`: atomic, checksummed, the newest `keep` kept.

A checkpoint is one object `<prefix>/ckpt-{epoch:06d}.pt`:

    SIMTRAIN-CKPT\\n
    {"version": 1, "epoch": 7, "size": 123456, "sha256": "..."}\\n
    <torch.save payload of the state dict>

`load_latest()` tries the newest checkpoint first and falls back to an older one when the newest is
corrupt or truncated (logging a warning). Payloads are loaded with `weights_only=True`, so a state holds
only tensors, numbers, strings, lists, tuples and dicts (the engine stores RNG states in that form).

    store = CheckpointStore(storage, "jobs/42/checkpoints")
    store.save(3, {"epoch": 3, "model": model.state_dict(), ...})
    state = store.load_latest()          # None when there is no usable checkpoint
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from typing import Any

import torch

from core.storage import Storage, validate_prefix

__all__ = ["CheckpointStore", "CorruptCheckpoint", "decode_checkpoint", "encode_checkpoint"]

log = logging.getLogger(__name__)

MAGIC = b"SIMTRAIN-CKPT\n"
FORMAT_VERSION = 1
_NAME = re.compile(r"ckpt-(\d{6,})\.pt")


class CorruptCheckpoint(ValueError):
    """A checkpoint object whose header, length or checksum does not verify."""


def encode_checkpoint(epoch: int, state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = {
        "version": FORMAT_VERSION,
        "epoch": int(epoch),
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def decode_checkpoint(blob: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, state) from bytes written by `encode_checkpoint`; CorruptCheckpoint if anything is off."""
    if not blob.startswith(MAGIC):
        raise CorruptCheckpoint("bad magic")
    end = blob.find(b"\n", len(MAGIC))
    if end < 0:
        raise CorruptCheckpoint("truncated header")
    try:
        header = json.loads(blob[len(MAGIC) : end])
    except ValueError as e:
        raise CorruptCheckpoint(f"bad header: {e}") from e
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
        raise CorruptCheckpoint(f"unsupported header {header!r}")
    payload = blob[end + 1 :]
    if len(payload) != header.get("size"):
        raise CorruptCheckpoint(f"payload is {len(payload)} bytes, header says {header.get('size')}")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CorruptCheckpoint("sha256 mismatch")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptCheckpoint(f"cannot unpickle payload: {e}") from e
    if not isinstance(state, dict):
        raise CorruptCheckpoint("payload is not a dict")
    return header, state


class CheckpointStore:
    """Checkpoints of one job under `prefix` in `storage`."""

    def __init__(self, storage: Storage, prefix: str, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.storage = storage
        self.prefix = validate_prefix(prefix.rstrip("/") + "/") if prefix else ""
        self.keep = keep

    def key(self, epoch: int) -> str:
        return f"{self.prefix}ckpt-{epoch:06d}.pt"

    def epochs(self) -> list[int]:
        """Epochs with a checkpoint object, oldest first (by name; not verified)."""
        found = []
        for key in self.storage.list(self.prefix):
            match = _NAME.fullmatch(key[len(self.prefix) :])
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def latest_epoch(self) -> int | None:
        """Newest checkpoint epoch by name (not verified; `load_latest` may fall back to an older one)."""
        epochs = self.epochs()
        return epochs[-1] if epochs else None

    def save(self, epoch: int, state: dict[str, Any]) -> str:
        """Write the checkpoint of `epoch` atomically, then delete all but the newest `keep`; its key."""
        key = self.key(epoch)
        self.storage.put_bytes(key, encode_checkpoint(epoch, state))
        for old in self.epochs()[: -self.keep]:
            self.storage.delete(self.key(old))
        return key

    def load_latest(self) -> dict[str, Any] | None:
        """The newest checkpoint state that verifies, or None."""
        for epoch in reversed(self.epochs()):
            key = self.key(epoch)
            try:
                _header, state = decode_checkpoint(self.storage.get_bytes(key))
                return state
            except (CorruptCheckpoint, FileNotFoundError) as e:
                log.warning("checkpoint %s is unusable (%s); trying an older one", key, e)
        return None

    def clear(self) -> int:
        """Delete every checkpoint of this store."""
        epochs = self.epochs()
        for epoch in epochs:
            self.storage.delete(self.key(epoch))
        return len(epochs)
