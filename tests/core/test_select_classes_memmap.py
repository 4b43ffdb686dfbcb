"""Tests of class selection on memory-mapped datasets: the kept rows stay in the file (a `RowView` of the
memmap), equal what selection of the same data in memory gives, cost no resident memory, and train as
the in-memory selection does on both data paths (resident and streamed).

    .venv/bin/python -m pytest tests/core/test_select_classes_memmap.py -q

A stored dataset of 20000 x 3 x 32 x 32 uint8 images (60 MiB, ten classes) is written once per module;
the training tests use a small one (CPU, one intra-op thread, an MLP, two epochs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.data import ArrayDataset, open_stored, select_classes, subset, write_stored
from core.data.row_view import RowView
from core.training import TrainingSpec, TrainPlan, train
from core.training.rows import RowReader
from core.training.splits import align_test_dataset

ROWS, ROW = 20000, (3, 32, 32)  # 3 KiB a row, 60 MiB in all
CLASSES = [f"c{i}" for i in range(10)]
KEEP = ["c7", "c2", "c5", "c0"]  # reordered, 6 classes dropped: 40 % of the rows are kept
PREPROCESSING = {"kind": "image", "size": [32, 32], "resize": "stretch", "channels": 3}


def labels(n: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, len(CLASSES), size=n)


def write_images(directory, n: int, row=ROW) -> None:
    """A stored dataset whose row i holds (i + j) % 251 at flat position j; written in chunks, so the
    whole array is never in memory."""
    directory.mkdir(parents=True, exist_ok=True)
    x = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.uint8, shape=(n, *row))
    flat = np.arange(int(np.prod(row)), dtype=np.int64)
    for start in range(0, n, 1000):
        rows = np.arange(start, min(start + 1000, n), dtype=np.int64)[:, None]
        x[start : start + len(rows)] = ((rows + flat) % 251).astype(np.uint8).reshape(len(rows), *row)
    x.flush()
    write_stored(ArrayDataset(x, labels(n), CLASSES, preprocessing=PREPROCESSING), directory)
    del x


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    directory = tmp_path_factory.mktemp("big") / "ds"
    write_images(directory, ROWS)
    return directory


def rss() -> dict[str, int]:
    """This process's resident anonymous and file-backed bytes (/proc/self/status)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "RssFile")}


def grown(before: dict[str, int]) -> int:
    now = rss()
    return sum(now[k] - before[k] for k in before)


# ---------------------------------------------------------------------------------------------- selection


def test_selection_keeps_the_rows_in_the_file_and_equals_the_in_memory_one(stored):
    ds = open_stored(stored)
    sel = select_classes(ds, KEEP)
    assert isinstance(ds.x, np.memmap) and isinstance(sel.x, RowView)
    assert sel.x.base is ds.x and np.shares_memory(sel.x.base, ds.x)  # no copy of the pixels
    assert str(stored / "x.npy") == str(sel.x.base.filename)

    in_memory = select_classes(ArrayDataset(np.asarray(ds.x).copy(), ds.y, CLASSES), KEEP)
    assert isinstance(in_memory.x, np.ndarray) and not isinstance(in_memory.x, np.memmap)
    assert sel.classes == in_memory.classes == KEEP and sel.preprocessing == PREPROCESSING
    assert np.array_equal(sel.y, in_memory.y) and sel.y.dtype == np.int64
    assert sel.x.shape == in_memory.x.shape and sel.x.dtype == np.uint8 and len(sel.x) == len(sel.y)
    assert sel.num_samples == in_memory.num_samples and sel.feature_shape == ROW and sel.dtype == "uint8"
    assert np.array_equal(np.asarray(sel.x), in_memory.x)
    assert 0.3 * ROWS < sel.num_samples < 0.5 * ROWS and sel.class_counts == in_memory.class_counts


def test_the_view_indexes_like_the_copy(stored):
    ds = open_stored(stored)
    sel = select_classes(ds, KEEP)
    copy = np.asarray(sel.x)
    picks = np.array([5, 0, 5, len(copy) - 1])
    assert np.array_equal(sel.x[picks], copy[picks]) and np.array_equal(sel.x[3], copy[3])
    assert np.array_equal(sel.x[10:20], copy[10:20]) and np.array_equal(sel.x[-1], copy[-1])
    assert np.array_equal(sel.x[sel.y == 1], copy[sel.y == 1]) and np.array_equal(sel.x[2, 1], copy[2, 1])
    assert np.array_equal(sel.x[picks, 0, 3], copy[picks, 0, 3])
    assert sel.x[:0].shape == (0, *ROW)
    again = select_classes(sel, ["c5", "c7"])  # a view of a view reads the file directly
    assert isinstance(again.x, RowView) and again.x.base is ds.x
    direct = select_classes(ArrayDataset(copy, sel.y, KEEP), ["c5", "c7"])
    assert np.array_equal(np.asarray(again.x), direct.x) and np.array_equal(again.y, direct.y)
    assert np.array_equal(subset(sel, picks).x, copy[picks])
    with pytest.raises(IndexError):
        sel.x[len(copy)]


def test_no_selected_row_is_read_into_memory(stored):
    ds = open_stored(stored)
    before = rss()
    sel = select_classes(ds, KEEP)  # ~24 MiB of kept rows
    assert grown(before) < 4 << 20
    before = rss()
    total = sum(len(c) for c in RowReader(sel.x).chunks(np.arange(sel.num_samples), 1 << 20))
    assert total == sel.num_samples and grown(before) < 8 << 20  # read it all by pread, mapped ~nothing
    before = rss()
    copied = ds.x[np.flatnonzero(np.isin(ds.y, [CLASSES.index(c) for c in KEEP]))]  # the control
    assert len(copied) == sel.num_samples and grown(before) > 16 << 20


def test_reading_the_view_matches_the_copy(stored):
    sel = select_classes(open_stored(stored), KEEP)
    reader, copy = RowReader(sel.x), np.asarray(sel.x)
    assert reader.file_backed
    rows = np.array([len(copy) - 1, 4, 5, 6, 0, 4])  # any order, runs, repeats
    assert np.array_equal(reader.read(rows), copy[rows])
    with pytest.raises(IndexError):
        reader.read(np.array([len(copy)]))


def test_in_memory_selection_is_unchanged():
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    ds = ArrayDataset(x, labels(20), CLASSES)
    sel = select_classes(ds, KEEP)
    keep = np.isin(ds.y, [CLASSES.index(c) for c in KEEP])
    assert type(sel.x) is np.ndarray and np.array_equal(sel.x, x[keep])
    assert sel.y.tolist() == [KEEP.index(CLASSES[c]) for c in ds.y[keep]]


# ---------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    directory = tmp_path_factory.mktemp("small") / "ds"
    write_images(directory, 400, row=(3, 8, 8))
    return directory


def plan(dataset, test=None, **extra) -> TrainPlan:
    spec = TrainingSpec(epochs=2, seed=3, batch_size=32, val_fraction=0.25)
    return TrainPlan(
        dataset, None, {"kind": "cross_entropy"}, {"kind": "mlp"}, spec, "cpu", test_dataset=test, **extra
    )


def test_a_selected_memmap_trains_as_the_in_memory_selection(small):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        on_disk = open_stored(small)
        in_memory = ArrayDataset(
            np.asarray(on_disk.x).copy(), on_disk.y, CLASSES, preprocessing=PREPROCESSING
        )
        test = align_test_dataset(on_disk, KEEP)
        assert isinstance(test.x, RowView)
        ref = train(plan(select_classes(in_memory, KEEP), align_test_dataset(in_memory, KEEP)))
        for extra in ({}, {"data_budget_bytes": 1024, "loader_workers": 1}):  # resident, streamed
            got = train(plan(select_classes(on_disk, KEEP), test, **extra))
            assert got.final_metrics == ref.final_metrics and got.final_metrics["evaluated_on"] == "test"
            sa, sb = got.model.state_dict(), ref.model.state_dict()
            assert all(torch.equal(sa[k], sb[k]) for k in sa)
    finally:
        torch.set_num_threads(threads)
