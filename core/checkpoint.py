"""Training checkpoints in a `Storage`: atomic, checksummed, with a retention policy and per-checkpoint
metadata that listing reads without loading any payload.

A checkpoint of epoch 7 is two objects:

    <prefix>/ckpt-000007.pt            SIMTRAIN-CKPT\\n
                                       {"version": 1, "epoch": 7, "size": 123456, "sha256": "..."}\\n
                                       <torch.save payload of the state dict>
    <prefix>-meta/ckpt-000007.json     {"epoch": 7, "step": 840, "metrics": {"val_loss": 0.41, ...},
                                        "size_bytes": ..., "sha256": ..., "created_at": "...Z",
                                        "model_json": {...}}

The metadata sits beside the payloads' prefix, not in it, so the payload prefix holds payloads only. Both
writes are atomic (`Storage.put_bytes`); the metadata is written first, so a payload never lacks its
metadata (one left over by a crash in between has no payload and is deleted by the next collection).

Retention (`Retention(best=N, last=M)`, a job's `training.keep_checkpoints`): after each save the store
keeps the union of the newest M epochs and the N best by `SELECTION_METRIC` (the validation loss, lower is
better: the metric the engine picks its best epoch and early-stops on), and never the newest one alone:
whenever something is to be deleted, the newest checkpoint whose payload verifies (header, length and
sha256) and every newer one are kept as well, so `load_latest()` (which falls back from a corrupt newest
checkpoint to an older one) always has a usable checkpoint to resume from.

`load_latest()` tries the newest checkpoint first and falls back to an older one when the newest is
corrupt or truncated (logging a warning). Payloads are loaded with `weights_only=True`, so a state holds
only tensors, numbers, strings, lists, tuples and dicts (the engine stores RNG states in that form).
Torch is imported by the first save or load, not by importing this module (the API lists checkpoints
without it).

    store = job_checkpoints(storage, job_id)             # CheckpointStore(storage, "jobs/<id>/checkpoints")
    store.save(3, {"epoch": 3, "model": model.state_dict(), ...}, meta={"step": 42, "metrics": {...}},
               retention=Retention(best=1, last=2))
    state = store.load_latest()          # None when there is no usable checkpoint
    meta, state = store.load(3)          # one epoch; FileNotFoundError / CorruptCheckpoint
    store.listing(Retention(best=1, last=2))   # newest first, each with "kept_as": ["best", "last"]
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.storage import Storage, validate_prefix

__all__ = [
    "SELECTION_METRIC",
    "CheckpointStore",
    "CorruptCheckpoint",
    "Retention",
    "decode_checkpoint",
    "encode_checkpoint",
    "job_checkpoints",
]

log = logging.getLogger(__name__)

MAGIC = b"SIMTRAIN-CKPT\n"
FORMAT_VERSION = 1
SELECTION_METRIC = "val_loss"  # minimised: core.training.state.TrainState.update_best
_NAME = re.compile(r"ckpt-(\d{6,})\.pt")
_META_NAME = re.compile(r"ckpt-(\d{6,})\.json")
_MAX_HEADER = 4096  # the payload header is a few numbers and a hash
_CHUNK = 1 << 20


class CorruptCheckpoint(ValueError):
    """A checkpoint object whose header, length or checksum does not verify."""


@dataclass(frozen=True)
class Retention:
    """Which checkpoints a job keeps: the `best` N by `SELECTION_METRIC` and the `last` M epochs."""

    best: int = 0
    last: int = 2

    def __post_init__(self) -> None:
        if self.best < 0 or self.last < 1:
            raise ValueError("Retention needs best >= 0 and last >= 1")

    @classmethod
    def of(cls, value: Any) -> Retention:
        """From a `training.keep_checkpoints` value: None (the default), a mapping or an object with
        `best` / `last` attributes (core.training.spec.KeepCheckpoints)."""
        if value is None:
            return cls()
        if isinstance(value, Retention):
            return value
        get = value.get if isinstance(value, Mapping) else lambda name, d: getattr(value, name, d)
        return cls(best=int(get("best", cls.best)), last=int(get("last", cls.last)))

    @classmethod
    def for_job(cls, job_spec: Mapping[str, Any] | None) -> Retention:
        """The retention of a stored job spec (its `training.keep_checkpoints`)."""
        training = (job_spec or {}).get("training") or {}
        return cls.of(training.get("keep_checkpoints") if isinstance(training, Mapping) else None)


def job_checkpoints(storage: Storage, job_id: str, retention: Retention | None = None) -> CheckpointStore:
    """The checkpoint store of one job (`jobs/<id>/checkpoints`), as the worker writes it."""
    return CheckpointStore(storage, f"jobs/{job_id}/checkpoints", retention=retention)


def _encode(epoch: int, state: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = {
        "version": FORMAT_VERSION,
        "epoch": int(epoch),
        "size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload, header


def encode_checkpoint(epoch: int, state: dict[str, Any]) -> bytes:
    return _encode(epoch, state)[0]


def _split_header(head: bytes) -> tuple[dict[str, Any], int]:
    """(header, where the payload starts) of a checkpoint's first bytes; CorruptCheckpoint if off."""
    if not head.startswith(MAGIC):
        raise CorruptCheckpoint("bad magic")
    end = head.find(b"\n", len(MAGIC))
    if end < 0:
        raise CorruptCheckpoint("truncated header")
    try:
        header = json.loads(head[len(MAGIC) : end])
    except ValueError as e:
        raise CorruptCheckpoint(f"bad header: {e}") from e
    if not isinstance(header, dict) or header.get("version") != FORMAT_VERSION:
        raise CorruptCheckpoint(f"unsupported header {header!r}")
    return header, end + 1


def decode_checkpoint(blob: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, state) from bytes written by `encode_checkpoint`; CorruptCheckpoint if anything is off."""
    header, start = _split_header(blob)
    payload = blob[start:]
    if len(payload) != header.get("size"):
        raise CorruptCheckpoint(f"payload is {len(payload)} bytes, header says {header.get('size')}")
    if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
        raise CorruptCheckpoint("sha256 mismatch")
    import torch

    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CorruptCheckpoint(f"cannot unpickle payload: {e}") from e
    if not isinstance(state, dict):
        raise CorruptCheckpoint("payload is not a dict")
    return header, state


def _verify_stream(stream) -> None:
    """Check magic, header, length and sha256 of a checkpoint read from `stream` (nothing unpickled)."""
    head = stream.read(len(MAGIC) + _MAX_HEADER)
    header, start = _split_header(head)
    digest, size = hashlib.sha256(head[start:]), len(head) - start
    while block := stream.read(_CHUNK):
        digest.update(block)
        size += len(block)
    if size != header.get("size") or digest.hexdigest() != header.get("sha256"):
        raise CorruptCheckpoint("length or sha256 mismatch")


def _selection_value(meta: Mapping[str, Any] | None) -> float | None:
    value = ((meta or {}).get("metrics") or {}).get(SELECTION_METRIC)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def kept_reasons(metas: Mapping[int, Mapping[str, Any] | None], retention: Retention) -> dict[int, list[str]]:
    """Why the policy keeps each epoch of `metas` (epoch -> metadata): "best" (the N lowest finite
    `SELECTION_METRIC` values, the earlier epoch first on a tie) and / or "last" (the newest M epochs)."""
    epochs = sorted(metas)
    scored = sorted((v, e) for e in epochs if (v := _selection_value(metas[e])) is not None)
    best = {e for _, e in scored[: retention.best]}
    last = set(epochs[-retention.last :])
    reasons = {e: [why for why, chosen in (("best", best), ("last", last)) if e in chosen] for e in epochs}
    return {e: why for e, why in reasons.items() if why}


class CheckpointStore:
    """Checkpoints of one job under `prefix` in `storage` (see the module docstring).

    `keep` is the default retention's `last` (the newest `keep`) and `best` its `best`; `retention`,
    when given, replaces both. `save(..., retention=...)` may name another one per save."""

    def __init__(
        self, storage: Storage, prefix: str, keep: int = 2, best: int = 0, retention: Retention | None = None
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be >= 1")
        self.storage = storage
        self.prefix = validate_prefix(prefix.rstrip("/") + "/") if prefix else ""
        self.meta_prefix = f"{self.prefix.rstrip('/')}-meta/" if self.prefix else "checkpoints-meta/"
        self.retention = retention if retention is not None else Retention(best=best, last=keep)

    @property
    def keep(self) -> int:
        return self.retention.last

    def key(self, epoch: int) -> str:
        return f"{self.prefix}ckpt-{epoch:06d}.pt"

    def meta_key(self, epoch: int) -> str:
        return f"{self.meta_prefix}ckpt-{epoch:06d}.json"

    def epochs(self) -> list[int]:
        """Epochs with a checkpoint object, oldest first (by name; not verified)."""
        return self._epochs(self.prefix, _NAME)

    def _epochs(self, prefix: str, pattern: re.Pattern) -> list[int]:
        found = []
        for key in self.storage.list(prefix):
            match = pattern.fullmatch(key[len(prefix) :])
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def latest_epoch(self) -> int | None:
        """Newest checkpoint epoch by name (not verified; `load_latest` may fall back to an older one)."""
        epochs = self.epochs()
        return epochs[-1] if epochs else None

    def save(
        self,
        epoch: int,
        state: dict[str, Any],
        meta: Mapping[str, Any] | None = None,
        retention: Retention | None = None,
    ) -> str:
        """Write the checkpoint of `epoch` (its metadata, then the payload; each atomic), then `collect`
        what the retention no longer keeps; its key. `meta`: step, metrics, model_json (JSON-safe)."""
        blob, header = _encode(epoch, state)
        record = {
            **dict(meta or {}),
            "epoch": int(epoch),
            "size_bytes": len(blob),
            "sha256": header["sha256"],
            "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        self.storage.put_bytes(self.meta_key(epoch), json.dumps(record, sort_keys=True).encode())
        key = self.key(epoch)
        self.storage.put_bytes(key, blob)
        self.collect(retention)
        return key

    def meta(self, epoch: int) -> dict[str, Any] | None:
        """The stored metadata of `epoch`, or None (none written, or unreadable)."""
        try:
            meta = json.loads(self.storage.get_bytes(self.meta_key(epoch)))
        except (FileNotFoundError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def listing(self, retention: Retention | None = None) -> list[dict[str, Any]]:
        """Every checkpoint, newest epoch first: epoch, step, metrics, size_bytes, created_at and
        `kept_as` (why the retention keeps it; ["fallback"] for one kept only because a newer checkpoint
        did not verify). Reads the metadata objects only."""
        metas = {e: self.meta(e) for e in self.epochs()}
        reasons = kept_reasons(metas, retention or self.retention)
        items = []
        for epoch in sorted(metas, reverse=True):
            meta = metas[epoch] or {}
            items.append({
                "epoch": epoch,
                "step": meta.get("step"),
                "metrics": meta.get("metrics") or {},
                "size_bytes": meta["size_bytes"] if "size_bytes" in meta else self._size(epoch),
                "created_at": meta.get("created_at"),
                "kept_as": reasons.get(epoch, ["fallback"]),
            })  # fmt: skip
        return items

    def _size(self, epoch: int) -> int | None:
        try:
            return self.storage.size(self.key(epoch))
        except FileNotFoundError:
            return None

    def load(self, epoch: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(metadata, state) of one epoch; FileNotFoundError when it is not kept, CorruptCheckpoint when
        it does not verify. The metadata is {"epoch": epoch} when none was written."""
        _header, state = decode_checkpoint(self.storage.get_bytes(self.key(epoch)))
        return self.meta(epoch) or {"epoch": epoch}, state

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

    def verify(self, epoch: int) -> bool:
        """Whether the payload of `epoch` verifies (magic, header, length, sha256), streamed."""
        try:
            with self.storage.open(self.key(epoch)) as stream:
                _verify_stream(stream)
            return True
        except (CorruptCheckpoint, FileNotFoundError) as e:
            log.warning("checkpoint %s does not verify (%s)", self.key(epoch), e)
            return False

    def collect(self, retention: Retention | None = None) -> list[int]:
        """Delete the checkpoints `retention` (default: the store's) does not keep, never the newest
        usable one nor any newer (see the module docstring); the epochs deleted."""
        epochs = self.epochs()
        keep = set(kept_reasons({e: self.meta(e) for e in epochs}, retention or self.retention))
        if any(e not in keep for e in epochs):
            for epoch in reversed(epochs):  # newest first, until one verifies
                keep.add(epoch)
                if self.verify(epoch):
                    break
        doomed = [e for e in epochs if e not in keep]
        for epoch in doomed:
            self.storage.delete(self.key(epoch))  # the payload first: a payload never lacks its metadata
            self.storage.delete(self.meta_key(epoch))
        for epoch in set(self._epochs(self.meta_prefix, _META_NAME)) - set(epochs):
            self.storage.delete(self.meta_key(epoch))  # metadata whose payload was never written
        return doomed

    def clear(self) -> int:
        """Delete every checkpoint of this store (payloads and metadata); how many payloads."""
        epochs = self.epochs()
        for epoch in epochs:
            self.storage.delete(self.key(epoch))
        for epoch in self._epochs(self.meta_prefix, _META_NAME):
            self.storage.delete(self.meta_key(epoch))
        return len(epochs)
