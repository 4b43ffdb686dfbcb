"""Tests of core.data.dataset and core.data.builtin: validation, npz round trip, class selection, splits.

/tmp/venv/bin/pytest tests/core/test_data.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data import (
    BUILTIN_DATASETS,
    ArrayDataset,
    check_trainable,
    load_builtin,
    load_npz,
    save_npz,
    select_classes,
    split,
    stratified_split,
)
from core.errors import DatasetError


def small(n_per_class=(5, 7, 3)) -> ArrayDataset:
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.arange(len(y) * 4, dtype=np.float32).reshape(len(y), 4)
    return ArrayDataset(x, y, [f"c{i}" for i in range(len(n_per_class))])


def test_array_dataset_properties_and_coercion():
    ds = ArrayDataset(
        np.ones((6, 2, 3), dtype=np.float64), np.array([0, 1, 1, 0, 1, 1], dtype=np.int32), ["a", "b"]
    )
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.feature_shape == (2, 3) and ds.num_samples == 6 and ds.num_classes == 2
    assert ds.class_counts == [2, 4]
    assert ds.summary()["class_counts"] == [2, 4]


@pytest.mark.parametrize(
    "x, y, classes, field",
    [
        (np.ones((3, 2)), np.array([0, 1, 2]), ["a", "b"], "file.label"),  # label out of range
        (np.ones((3, 2)), np.array([0, 1]), ["a", "b"], "file"),  # length mismatch
        (np.array([[np.nan, 1.0], [1.0, 2.0]]), np.array([0, 1]), ["a", "b"], "file"),
        (np.array([[np.inf, 1.0], [1.0, 2.0]]), np.array([0, 1]), ["a", "b"], "file"),
        (np.ones((2, 2)), np.array([0, 1]), ["a", "a"], "classes"),
        (np.array([["a", "b"], ["c", "d"]]), np.array([0, 1]), ["a", "b"], "file.x"),
        (np.ones(3), np.array([0, 1, 1]), ["a", "b"], "file.x"),
        (np.ones((2, 2)), np.array([0.0, 1.0]), ["a", "b"], "file.label"),
    ],
)
def test_array_dataset_rejects(x, y, classes, field):
    with pytest.raises(DatasetError) as info:
        ArrayDataset(x, y, classes)
    assert info.value.field == field


def test_npz_round_trip(tmp_path):
    ds = small()
    save_npz(ds, tmp_path / "sub" / "ds.npz")
    back = load_npz(tmp_path / "sub" / "ds.npz")
    assert np.array_equal(back.x, ds.x) and np.array_equal(back.y, ds.y) and back.classes == ds.classes
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.startswith(".tmp")]


def test_load_npz_rejects_garbage(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError):
        load_npz(tmp_path / "bad.npz")


def test_select_classes_reorders_and_subsets():
    ds = small()
    sel = select_classes(ds, ["c2", "c0"])
    assert sel.classes == ["c2", "c0"]
    assert sel.class_counts == [3, 5]
    # features follow their labels: rows of old class 2 are now label 0
    old_rows = ds.x[ds.y == 2]
    assert np.array_equal(sel.x[sel.y == 0], old_rows)
    assert select_classes(ds, None) is ds


@pytest.mark.parametrize("classes", [["c0", "nope"], ["c0", "c0"], []])
def test_select_classes_errors(classes):
    with pytest.raises(DatasetError) as info:
        select_classes(small(), classes)
    assert info.value.field == "classes"


def test_check_trainable():
    check_trainable(small())
    with pytest.raises(DatasetError, match="at least 2 classes"):
        check_trainable(ArrayDataset(np.ones((3, 1)), np.zeros(3, dtype=np.int64), ["a"]))
    with pytest.raises(DatasetError, match="no samples"):
        check_trainable(ArrayDataset(np.ones((3, 1)), np.array([0, 0, 0]), ["a", "b"]))
    with pytest.raises(DatasetError, match="1 sample"):
        check_trainable(ArrayDataset(np.ones((3, 1)), np.array([0, 0, 1]), ["a", "b"]))


def test_stratified_split_deterministic_and_stratified():
    y = np.repeat(np.arange(4), [10, 20, 2, 7])
    tr1, va1 = stratified_split(y, 0.2, seed=3)
    tr2, va2 = stratified_split(y, 0.2, seed=3)
    assert np.array_equal(tr1, tr2) and np.array_equal(va1, va2)
    assert sorted(np.concatenate([tr1, va1]).tolist()) == list(range(len(y)))
    assert set(tr1).isdisjoint(va1)
    assert np.bincount(y[va1], minlength=4).tolist() == [2, 4, 1, 1]  # every class >= 1 in val
    assert np.bincount(y[tr1], minlength=4).min() >= 1
    tr3, _ = stratified_split(y, 0.2, seed=4)
    assert not np.array_equal(tr1, tr3)


def test_split_returns_datasets():
    train, val = split(small(), 0.3, seed=0)
    assert train.num_samples + val.num_samples == 15
    assert val.class_counts == [2, 2, 1]


def test_builtin_digits():
    assert set(BUILTIN_DATASETS) == {"digits", "digits-images"}
    vec, img = load_builtin("digits"), load_builtin("digits-images")
    assert vec.feature_shape == (64,) and img.feature_shape == (1, 8, 8)
    assert vec.classes == [str(i) for i in range(10)] and vec.num_samples == 1797
    assert np.array_equal(vec.x.reshape(-1, 1, 8, 8), img.x) and np.array_equal(vec.y, img.y)
    assert 0.0 <= vec.x.min() and vec.x.max() <= 1.0
    with pytest.raises(DatasetError) as info:
        load_builtin("mnist")
    assert info.value.field == "dataset"


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=2, max_value=30), min_size=2, max_size=6),
    val_fraction=st.floats(min_value=0.05, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_stratified_split_properties(counts, val_fraction, seed):
    y = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    train, val = stratified_split(y, val_fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    per_class_val = np.bincount(y[val], minlength=len(counts))
    per_class_train = np.bincount(y[train], minlength=len(counts))
    assert per_class_val.min() >= 1 and per_class_train.min() >= 1
    again = stratified_split(y, val_fraction, seed)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)


# ----------------------------------------------------------------------------------------- uint8 / memmap


def _images(tmp_path, n_per_class=(3, 3)) -> ArrayDataset:
    """uint8 (N, 3, 4, 4) images in a read-only memmap, as open_stored gives them."""
    from core.data import open_stored, write_stored

    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    x = np.arange(len(y) * 48, dtype=np.int64).reshape(len(y), 3, 4, 4).astype(np.uint8)
    pre = {"kind": "image", "size": [4, 4], "resize": "stretch", "channels": 3}
    write_stored(
        ArrayDataset(x, y, [f"c{i}" for i in range(len(n_per_class))], preprocessing=pre), tmp_path / "ds"
    )
    return open_stored(tmp_path / "ds")


def test_uint8_images_stay_uint8_and_the_memmap_is_kept(tmp_path):
    ds = _images(tmp_path)
    assert isinstance(ds.x, np.memmap) and ds.x.dtype == np.uint8 and not ds.x.flags.writeable
    assert ds.preprocessing["size"] == [4, 4] and ds.summary()["dtype"] == "uint8"
    assert ArrayDataset(np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 1]), ["a", "b"]).x.dtype == np.uint8
    assert (
        ArrayDataset(np.zeros((2, 4), np.uint8), np.array([0, 1]), ["a", "b"]).x.dtype == np.float32
    )  # tabular


def test_select_classes_and_subset_keep_x_when_no_row_is_dropped(tmp_path):
    from core.data import subset

    ds = _images(tmp_path)
    swapped = select_classes(ds, ["c1", "c0"])
    assert swapped.x is ds.x and swapped.y.tolist() == [1, 1, 1, 0, 0, 0] and swapped.classes == ["c1", "c0"]
    assert swapped.preprocessing == ds.preprocessing
    assert subset(ds, np.arange(6)).x is ds.x
    fewer = select_classes(ds, ["c1"])
    assert fewer.x is not ds.x and fewer.num_samples == 3 and np.array_equal(fewer.x, ds.x[3:])
    assert subset(ds, np.array([4, 0])).x.tolist() == ds.x[[4, 0]].tolist()


def test_stored_form_rejects_a_mismatch(tmp_path):
    from core.data import open_stored

    _images(tmp_path)
    np.save(tmp_path / "ds" / "y.npy", np.zeros(5, np.int64))
    with pytest.raises(DatasetError) as info:
        open_stored(tmp_path / "ds")
    assert info.value.field == "dataset"


def test_local_cache_downloads_once_and_evicts_the_least_recently_used(tmp_path):
    import os
    import time

    from core.data.local_cache import CacheTooSmall, LocalCache

    calls = []

    def writer(payload: bytes):
        def write(path):
            calls.append(path.name)
            path.write_bytes(payload)

        return write

    cache = LocalCache(tmp_path / "cache", max_bytes=250)
    a = cache.get("a-1", {"x.npy": writer(b"a" * 100)}, 100)
    assert (a / "x.npy").read_bytes() == b"a" * 100 and cache.get("a-1", {"x.npy": writer(b"?")}, 100) == a
    assert calls == ["x.npy"]  # the second get did not download
    b = cache.get("b-1", {"x.npy": writer(b"b" * 100)}, 100)
    os.utime(b, (time.time() - 100, time.time() - 100))  # b is now the least recently used
    cache.get("a-1", {}, 100)
    cache.get("c-1", {"x.npy": writer(b"c" * 100)}, 100)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a-1", "c-1"]
    with pytest.raises(CacheTooSmall):
        cache.get("d-1", {"x.npy": writer(b"d")}, 1000)
    with pytest.raises(ValueError):
        cache.get("../x", {}, 1)
