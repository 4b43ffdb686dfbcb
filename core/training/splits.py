"""Which rows train, which select the epoch and which measure the result: `Splits`, made once per run.

    splits = make_splits(ds, spec)                           # training.split (or val_fraction) of ds
    splits = make_splits(ds, spec, test_dataset=test_ds)     # test rows from another dataset
    splits.train, splits.val, splits.test                    # sorted int64 row indices (test: None)
    splits.test_source                                       # "split" | "test_dataset" | "none"
    test_ds = align_test_dataset(test_ds, ds.classes)        # the worker: a test dataset in ds's classes

- A spec without `split` splits as it always did: `core.data.stratified_split(y, val_fraction, seed)`
  with the run seed, no test rows (so its runs are bit-identical to before splits existed).
- With `split`, the seed is `split.seed`, else the run seed (`split_seed`). `three_way_split`: per class
  (n rows, shuffled by a generator of the split seed) the first `clamp(round(n * val), 1, n - 1)` rows
  validate, the next `round(n * test)` test, the rest train; the split depends on (y, val, test, split
  seed) alone, never on the run seed, and its validation rows are those of the two-way split with the same
  seed. A class left without a training row, or a test split that rounds to no row at all, is a
  `TrainingError("data_error")` naming `training.split`.
- With a test dataset the training dataset is split train / val only (a `split.test` as well is a
  SpecError): every row of the test dataset is a test row. It must hold the job's classes (its rows of
  other classes are left out) and have the training data's feature shape and dtype.

Early stopping and the best epoch use the validation rows only; the test rows are evaluated once, by the
final model (core/training/engine.py, step 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.dataset import ArrayDataset, check_trainable, select_classes, stratified_split
from core.errors import DatasetError, SpecError, TrainingError
from core.training.spec import TrainingSpec

__all__ = ["TEST_SOURCES", "Splits", "align_test_dataset", "make_splits", "split_seed", "three_way_split"]

TEST_SOURCES = ("split", "test_dataset", "none")


@dataclass(frozen=True)
class Splits:
    """Row indices of one run: `train` / `val` into the dataset, `test` into `test_source`'s rows."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None
    test_source: str  # "split": rows of the dataset; "test_dataset": rows of the test dataset; "none"
    seed: int  # the split seed used

    @property
    def evaluated_on(self) -> str:
        """Where the final metrics come from: "test" when there are test rows, else "val"."""
        return "val" if self.test is None else "test"


def split_seed(spec: TrainingSpec) -> int:
    """The split's seed: `split.seed` when given, else the run seed."""
    if spec.split is not None and spec.split.seed is not None:
        return spec.split.seed
    return spec.seed


def three_way_split(
    y: np.ndarray, val: float, test: float, seed: int, classes: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train, val, test) indices, each sorted int64 (see the module docstring); DatasetError
    naming `training.split` when a class would keep no training row."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]  # the draws of stratified_split: the same val rows
        n = len(idx)
        n_val = 0 if n < 2 else min(max(round(n * val), 1), n - 1)
        n_test = round(n * test)
        if n - n_val - n_test < 1:
            name = classes[int(c)] if classes is not None else int(c)
            raise DatasetError(
                "training.split",
                f"class {name!r} has {n} rows: too few to keep one for training after "
                f"{n_val} for validation and {n_test} for test; lower split.val / split.test",
            )
        for part, rows in zip(parts, (idx[n_val + n_test :], idx[:n_val], idx[n_val : n_val + n_test])):
            part.append(rows)
    empty = np.zeros(0, dtype=np.int64)
    train, val_rows, test_rows = (np.sort(np.concatenate(p or [empty])).astype(np.int64) for p in parts)
    return train, val_rows, test_rows


def make_splits(ds: ArrayDataset, spec: TrainingSpec, test_dataset: ArrayDataset | None = None) -> Splits:
    """The run's splits; TrainingError("data_error") when the data cannot be split as asked."""
    try:
        check_trainable(ds)
        if test_dataset is not None:
            _check_test_dataset(ds, test_dataset)
        return _make(ds, spec, test_dataset)
    except DatasetError as e:
        raise TrainingError("data_error", e.message) from e


def _make(ds: ArrayDataset, spec: TrainingSpec, test_dataset: ArrayDataset | None) -> Splits:
    seed = split_seed(spec)
    test_share = spec.split.test if spec.split is not None else 0.0
    if test_dataset is not None and test_share > 0:
        raise SpecError("training.split.test", "give a test split or a test dataset, not both")
    if test_share > 0:
        train, val, test = three_way_split(ds.y, spec.split.val, test_share, seed, list(ds.classes))
        if len(test) == 0:
            raise DatasetError("training.split.test", f"a test share of {test_share} leaves no test row")
        splits = Splits(train, val, test, "split", seed)
    else:
        val_share = spec.split.val if spec.split is not None else spec.val_fraction
        train, val = stratified_split(ds.y, val_share, seed)
        test = None if test_dataset is None else np.arange(test_dataset.num_samples, dtype=np.int64)
        splits = Splits(train, val, test, "none" if test is None else "test_dataset", seed)
    if len(splits.train) == 0 or len(splits.val) == 0:
        raise TrainingError("data_error", "the dataset is too small to split into training and validation")
    return splits


def _check_test_dataset(ds: ArrayDataset, test: ArrayDataset) -> None:
    """The test dataset must be in the training data's classes (same order), feature shape and dtype."""
    if list(test.classes) != list(ds.classes):
        raise DatasetError(
            "test_dataset", f"has classes {test.classes[:10]}, the job trains {ds.classes[:10]}"
        )
    if test.feature_shape != ds.feature_shape or test.dtype != ds.dtype:
        raise DatasetError(
            "test_dataset",
            f"features {test.dtype} {list(test.feature_shape)}; the training data has "
            f"{ds.dtype} {list(ds.feature_shape)}",
        )
    if test.num_samples == 0:
        raise DatasetError("test_dataset", "has no rows")


def align_test_dataset(test: ArrayDataset, classes: list[str]) -> ArrayDataset:
    """`test` relabelled to `classes` (the job's, in its order), rows of other classes left out;
    DatasetError("test_dataset") when it lacks one of them."""
    missing = [c for c in classes if c not in set(test.classes)]
    if missing:
        raise DatasetError("test_dataset", f"lacks the job's class(es) {missing[:10]}")
    if list(test.classes) == list(classes):
        return test
    return select_classes(test, list(classes))
