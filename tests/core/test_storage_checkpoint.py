"""Tests of core.storage (local and fsspec) and core.checkpoint (atomic, checksummed, fallback).

/tmp/venv/bin/python -m pytest tests/core/test_storage_checkpoint.py -q
"""

from __future__ import annotations

import logging
import uuid

import pytest
import torch

from core.checkpoint import CheckpointStore, CorruptCheckpoint, decode_checkpoint, encode_checkpoint
from core.storage import FsspecStorage, LocalStorage, make_storage, validate_key


@pytest.fixture(params=["local", "file-url", "memory"])
def storage(request, tmp_path):
    if request.param == "local":
        return make_storage(tmp_path / "store")
    if request.param == "file-url":
        return make_storage(f"file://{tmp_path}/store")
    return make_storage(f"memory://simtrain-test-{uuid.uuid4().hex}")


def test_make_storage_kinds(tmp_path):
    assert isinstance(make_storage(tmp_path), LocalStorage)
    assert isinstance(make_storage(f"file://{tmp_path}"), LocalStorage)
    assert isinstance(make_storage("memory://x-" + uuid.uuid4().hex), FsspecStorage)


@pytest.mark.parametrize(
    "key", ["", "../x", "a/../b", "/abs", "a//b", "a/./b", "a\\b", "a\x00b", "C:/x", "a/", ".tmp-x"]
)
def test_invalid_keys(storage, key):
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        storage.put_bytes(key, b"x")


def test_storage_round_trip(storage, tmp_path):
    storage.put_bytes("jobs/1/a.bin", b"hello")
    storage.put_bytes("jobs/1/a.bin", b"hello again")  # overwrite
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3000)
    storage.put_file("jobs/1/sub/b.bin", src)
    storage.put_bytes("jobs/10/c.bin", b"c")
    storage.put_bytes("other", b"o")

    assert storage.get_bytes("jobs/1/a.bin") == b"hello again"
    with storage.open("jobs/1/sub/b.bin") as f:
        assert f.read() == b"x" * 3000
    assert storage.size("jobs/1/sub/b.bin") == 3000
    assert storage.exists("jobs/1/a.bin") and not storage.exists("jobs/1/nope")
    assert storage.list("jobs/1/") == ["jobs/1/a.bin", "jobs/1/sub/b.bin"]
    assert storage.list("jobs/1") == ["jobs/1/a.bin", "jobs/1/sub/b.bin", "jobs/10/c.bin"]
    assert storage.list("") == ["jobs/1/a.bin", "jobs/1/sub/b.bin", "jobs/10/c.bin", "other"]
    assert storage.list("missing/") == []

    with pytest.raises(FileNotFoundError):
        storage.get_bytes("jobs/1/nope")
    with pytest.raises(FileNotFoundError):
        storage.size("jobs/1/nope")
    storage.delete("jobs/1/a.bin")
    storage.delete("jobs/1/a.bin")  # idempotent
    assert storage.delete_prefix("jobs/1/") == 1
    assert storage.list("") == ["jobs/10/c.bin", "other"]
    with pytest.raises(ValueError):
        storage.delete_prefix("")


def test_local_put_is_atomic_on_failure(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.put_bytes("k", b"old")

    def failing_write(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        storage._atomic_write("k", failing_write)
    assert storage.get_bytes("k") == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temp file left behind


def state(epoch: int) -> dict:
    torch.manual_seed(epoch)
    return {"epoch": epoch, "w": torch.randn(3, 3), "nested": {"lr": 0.1, "hist": [1.0, 2.0]}}


def test_checkpoint_encode_decode():
    blob = encode_checkpoint(4, state(4))
    header, back = decode_checkpoint(blob)
    assert header["epoch"] == 4 and torch.equal(back["w"], state(4)["w"])
    for broken in (blob[:-10], b"junk" + blob, blob[:-1] + bytes([blob[-1] ^ 1])):
        with pytest.raises(CorruptCheckpoint):
            decode_checkpoint(broken)


def test_checkpoint_store_keeps_newest_two(storage):
    store = CheckpointStore(storage, "jobs/7/ckpt")
    assert store.load_latest() is None and store.latest_epoch() is None
    for epoch in (1, 2, 3):
        store.save(epoch, state(epoch))
    assert store.epochs() == [2, 3] and store.latest_epoch() == 3
    assert storage.list("jobs/7/ckpt/") == ["jobs/7/ckpt/ckpt-000002.pt", "jobs/7/ckpt/ckpt-000003.pt"]
    loaded = store.load_latest()
    assert loaded["epoch"] == 3 and torch.equal(loaded["w"], state(3)["w"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_checkpoint_falls_back_when_newest_is_corrupt(storage, damage, caplog):
    store = CheckpointStore(storage, "ck", keep=2)
    store.save(1, state(1))
    store.save(2, state(2))
    blob = storage.get_bytes("ck/ckpt-000002.pt")
    bad = {"truncate": blob[: len(blob) // 2], "flip": blob[:-5] + b"XXXXX", "garbage": b"\x00" * 50}[damage]
    storage.put_bytes("ck/ckpt-000002.pt", bad)
    with caplog.at_level(logging.WARNING, logger="core.checkpoint"):
        loaded = store.load_latest()
    assert loaded["epoch"] == 1
    assert "unusable" in caplog.text
    storage.put_bytes("ck/ckpt-000001.pt", b"also bad")
    assert store.load_latest() is None


def test_checkpoint_store_ignores_other_files_and_clears(storage):
    store = CheckpointStore(storage, "j/ck/", keep=3)
    storage.put_bytes("j/ck/notes.txt", b"x")
    storage.put_bytes("j/ck-other/ckpt-000009.pt", b"x")
    store.save(5, state(5))
    assert store.epochs() == [5]
    assert store.clear() == 1 and store.epochs() == []
    assert storage.exists("j/ck/notes.txt")
