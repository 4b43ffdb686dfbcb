"""Checkpoint retention (`training.keep_checkpoints`) and metadata in core.checkpoint: the union of the
best N by validation loss and the last M is kept, the newest is never deleted, a corrupt newest one keeps a
usable fallback, listing reads the metadata only, and the engine writes what listing shows.

.venv/bin/pytest -q tests/core/test_checkpoint_retention.py
"""

from __future__ import annotations

import itertools
import math
import uuid
from datetime import datetime

import pytest
import torch

from core.checkpoint import CheckpointStore, Retention, encode_checkpoint, job_checkpoints
from core.storage import LocalStorage, make_storage
from core.training.spec import KeepCheckpoints

# validation losses of epochs 1..8: not monotone, with a tie (epochs 2 and 6) and a NaN (epoch 5)
LOSSES = [0.9, 0.5, 0.7, 0.4, math.nan, 0.5, 0.8, 0.6]


@pytest.fixture(params=["local", "memory"])
def storage(request, tmp_path):
    if request.param == "local":
        return make_storage(tmp_path / "store")
    return make_storage(f"memory://simtrain-retention-{uuid.uuid4().hex}")


def state(epoch: int) -> dict:
    torch.manual_seed(epoch)
    return {"epoch": epoch, "model": {"w": torch.randn(4, 3)}}


def meta(epoch: int) -> dict:
    loss = LOSSES[epoch - 1]
    val_loss = None if math.isnan(loss) else loss
    return {"step": 10 * epoch, "metrics": {"val_loss": val_loss, "val_accuracy": 0.5}}


def expected_kept(saved: list[int], best: int, last: int) -> set[int]:
    """The policy written out plainly: the `last` newest, and the `best` lowest finite losses (earlier
    epoch first on a tie)."""
    finite = [e for e in saved if not math.isnan(LOSSES[e - 1])]
    ranked = sorted(finite, key=lambda e: (LOSSES[e - 1], e))
    return set(saved[-last:]) | set(ranked[:best])


def test_retention_from_spec_values():
    assert Retention.of(None) == Retention(best=0, last=2)
    assert Retention.of({"best": 3}) == Retention(best=3, last=2)
    assert Retention.of(KeepCheckpoints(best=1, last=4)) == Retention(best=1, last=4)
    assert Retention.for_job({"training": {"keep_checkpoints": {"best": 2, "last": 1}}}) == Retention(2, 1)
    assert Retention.for_job({"training": {}}) == Retention() == Retention.for_job(None)
    with pytest.raises(ValueError):
        Retention(best=0, last=0)


@pytest.mark.parametrize(("best", "last"), [(0, 1), (0, 2), (1, 1), (2, 1), (1, 3), (3, 2), (10, 10)])
def test_gc_keeps_the_union_of_best_and_last(storage, best, last):
    store = CheckpointStore(storage, "jobs/r/checkpoints")
    policy = Retention(best=best, last=last)
    saved: list[int] = []
    for epoch in range(1, len(LOSSES) + 1):
        store.save(epoch, state(epoch), meta=meta(epoch), retention=policy)
        saved.append(epoch)
        want = expected_kept(saved, best, last)
        assert set(store.epochs()) == want, (epoch, store.epochs())
        assert store.latest_epoch() == epoch  # the newest: what a resume needs
        assert store.load_latest()["epoch"] == epoch
        listed = store.listing(policy)
        assert [i["epoch"] for i in listed] == sorted(want, reverse=True)
        for item in listed:
            assert ("last" in item["kept_as"]) == (item["epoch"] in saved[-last:]), item
            assert item["kept_as"] and set(item["kept_as"]) <= {"best", "last"}, item
    # metadata objects exist exactly for the kept payloads
    metas = sorted(int(key[-11:-5]) for key in storage.list(store.meta_prefix))
    assert metas == store.epochs()


def test_best_is_chosen_by_val_loss_never_a_nan():
    storage = make_storage(f"memory://simtrain-retention-{uuid.uuid4().hex}")
    store = CheckpointStore(storage, "ck")
    for epoch in range(1, 9):
        store.save(epoch, state(epoch), meta=meta(epoch), retention=Retention(best=2, last=1))
    # lowest losses: epoch 4 (0.4), then the tie at 0.5 between 2 and 6 goes to the earlier epoch
    assert store.epochs() == [2, 4, 8]
    kept_as = {i["epoch"]: i["kept_as"] for i in store.listing(Retention(best=2, last=1))}
    assert kept_as == {8: ["last"], 4: ["best"], 2: ["best"]}
    assert 5 not in store.epochs()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_a_corrupt_newest_checkpoint_keeps_a_usable_fallback(storage, damage, monkeypatch):
    store = CheckpointStore(storage, "jobs/c/checkpoints", retention=Retention(best=0, last=1))
    store.save(1, state(1), meta=meta(1))
    store.save(2, state(2), meta=meta(2))
    assert store.epochs() == [2]
    put = storage.put_bytes

    def damaging(key, data):  # the storage damages the payload of epoch 3 as it is written
        if key == store.key(3):
            damaged = {
                "truncate": data[: len(data) // 2],
                "flip": data[:-5] + b"XXXXX",
                "garbage": b"\0" * 40,
            }
            data = damaged[damage]
        put(key, data)

    monkeypatch.setattr(storage, "put_bytes", damaging)
    store.save(3, state(3), meta=meta(3))
    assert store.epochs() == [2, 3]  # 2 is the newest that verifies: kept although last=1
    assert store.load_latest()["epoch"] == 2
    assert {i["epoch"]: i["kept_as"] for i in store.listing()} == {3: ["last"], 2: ["fallback"]}

    store.save(4, state(4), meta=meta(4))  # epoch 4 verifies: 2 and the corrupt 3 may go
    assert store.epochs() == [4] and store.load_latest()["epoch"] == 4


def test_two_corrupt_newest_checkpoints_keep_the_older_good_one(storage, monkeypatch):
    store = CheckpointStore(storage, "ck", retention=Retention(best=0, last=1))
    store.save(1, state(1), meta=meta(1))
    put = storage.put_bytes
    monkeypatch.setattr(
        storage, "put_bytes", lambda key, data: put(key, data[:-3] if key.endswith(".pt") else data)
    )
    store.save(2, state(2), meta=meta(2))
    store.save(3, state(3), meta=meta(3))
    assert store.epochs() == [1, 2, 3]
    assert store.load_latest()["epoch"] == 1
    assert not store.verify(3) and not store.verify(2) and store.verify(1)


def test_gc_reads_no_payload_while_nothing_is_to_be_deleted(storage, monkeypatch):
    store = CheckpointStore(storage, "ck", retention=Retention(best=0, last=3))
    opened: list[str] = []
    real_open = storage.open
    monkeypatch.setattr(storage, "open", lambda key: opened.append(key) or real_open(key))
    for epoch in (1, 2, 3):
        store.save(epoch, state(epoch), meta=meta(epoch))
    assert [k for k in opened if k.endswith(".pt")] == []
    store.save(4, state(4), meta=meta(4))  # now epoch 1 goes: the newest is verified first
    assert [k for k in opened if k.endswith(".pt")] == [store.key(4)]
    assert store.epochs() == [2, 3, 4]


def test_listing_reads_metadata_only(storage, monkeypatch):
    store = job_checkpoints(storage, "j1")
    for epoch in (1, 2):
        store.save(epoch, state(epoch), meta=meta(epoch))

    def no_payloads(key):
        assert not key.endswith(".pt"), f"listing read the payload {key}"
        return real_open(key)

    real_open = storage.open
    monkeypatch.setattr(storage, "open", no_payloads)  # get_bytes reads through open
    items = store.listing()
    assert [i["epoch"] for i in items] == [2, 1]
    monkeypatch.undo()
    for item in items:
        epoch = item["epoch"]
        assert item["step"] == 10 * epoch and item["metrics"]["val_loss"] == LOSSES[epoch - 1]
        assert item["size_bytes"] == storage.size(store.key(epoch))
        assert datetime.fromisoformat(item["created_at"]).tzinfo is not None
        assert item["kept_as"] == ["last"]
    got_meta, got_state = store.load(2)
    assert got_meta["step"] == 20 and torch.equal(got_state["model"]["w"], state(2)["model"]["w"])
    with pytest.raises(FileNotFoundError):
        store.load(7)


def test_metadata_without_a_payload_is_collected_and_old_checkpoints_still_list(tmp_path):
    storage = LocalStorage(tmp_path)
    store = CheckpointStore(storage, "jobs/o/checkpoints")
    storage.put_bytes(store.key(1), encode_checkpoint(1, state(1)))  # written before metadata existed
    storage.put_bytes(store.meta_key(9), b'{"epoch": 9}')  # a crash between the two writes of epoch 9
    assert [i["epoch"] for i in store.listing()] == [1]
    old = store.listing()[0]
    assert old["metrics"] == {} and old["size_bytes"] == storage.size(store.key(1)) and old["step"] is None
    store.save(2, state(2), meta=meta(2))
    assert not storage.exists(store.meta_key(9))
    assert store.epochs() == [1, 2] and store.load(1)[0] == {"epoch": 1}
    assert store.clear() == 2 and storage.list("jobs/o/") == []


def test_the_engine_writes_what_listing_shows(tmp_path):
    from core.data import load_builtin
    from core.training import TrainPlan, train

    store = CheckpointStore(LocalStorage(tmp_path), "jobs/e/checkpoints")
    keep = {"best": 1, "last": 2}
    plan = TrainPlan(
        dataset=load_builtin("digits"), similarity_spec=None, loss_spec={"kind": "cross_entropy"},
        model_spec={"kind": "linear"}, device="cpu",
        training={"epochs": 5, "seed": 3, "batch_size": 100, "learning_rate": 0.05, "keep_checkpoints": keep},
    )  # fmt: skip
    result = train(plan, checkpoints=store)
    losses = {h["epoch"]: h["val"]["loss"] for h in result.history}
    best = min(losses, key=lambda e: (losses[e], e))
    assert set(store.epochs()) == {4, 5, best}
    steps = math.ceil(len(result.train_indices) / 100)
    for item in store.listing(Retention.of(keep)):
        epoch = item["epoch"]
        assert item["step"] == epoch * steps
        assert item["metrics"]["val_loss"] == pytest.approx(losses[epoch])
        assert item["metrics"]["val_accuracy"] == pytest.approx(result.history[epoch - 1]["val"]["accuracy"])
        assert ("best" in item["kept_as"]) == (epoch == best)
    last_meta, last_state = store.load(5)
    assert last_meta["model_json"] == result.model_json  # the final epoch's description is the final one
    assert set(last_state["model"]) == set(result.model.state_dict())


@pytest.mark.parametrize(("best", "last"), list(itertools.product([0, 2], [1, 2])))
def test_a_resume_after_retention_matches_an_uninterrupted_run(tmp_path, best, last):
    from core.data import load_builtin
    from core.training import TrainPlan, train
    from core.training.hooks import NoopHooks

    class StopAt(NoopHooks):
        def __init__(self, epoch: int) -> None:
            self.epoch, self.seen = epoch, 0

        def on_epoch(self, epoch, epochs, record) -> None:
            self.seen = epoch

        def should_stop(self) -> bool:
            return self.seen >= self.epoch

    def plan():
        keep = {"best": best, "last": last}
        return TrainPlan(
            dataset=load_builtin("digits"), similarity_spec=None, loss_spec={"kind": "cross_entropy"},
            model_spec={"kind": "linear"}, device="cpu",
            training={"epochs": 4, "seed": 5, "batch_size": 200, "keep_checkpoints": keep},
        )  # fmt: skip

    store = CheckpointStore(LocalStorage(tmp_path / "a"), "ck")
    stopped = train(plan(), StopAt(2), checkpoints=store)
    assert stopped.stop_reason == "cancelled" and store.latest_epoch() == 2
    resumed = train(plan(), checkpoints=store)
    reference = train(plan(), checkpoints=CheckpointStore(LocalStorage(tmp_path / "b"), "ck"))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["val"]["loss"] for h in resumed.history] == [h["val"]["loss"] for h in reference.history]
