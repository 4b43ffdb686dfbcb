"""Tests of the train / val / test splits (core/training/splits.py) and the numbers reported on them.

    .venv/bin/python -m pytest tests/core/test_splits.py -q -p no:cacheprovider

What they pin down: `training.split` is validated with the field named; the split is stratified,
disjoint, deterministic for the split seed and independent of the run seed; the test rows are never
seen by training or selection (changing their features changes nothing but the test metrics); the
reported test metrics are `evaluate()` of the returned model on exactly the stored test rows; a
`test_dataset` gives the test rows instead; a spec without `split` trains bit for bit as before (its
checkpoint fingerprint is the one of the version before splits existed); the artifacts store the
indices; the comparison report uses the test predictions and warns without them. All on CPU with the
built-in digits, a fraction of a second per run.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from core.artifacts import ARTIFACT_FILES, write_artifacts
from core.checkpoint import CheckpointStore
from core.compare.report import NO_TEST_WARNING, ChildRun, build_report
from core.data import ArrayDataset, load_builtin, select_classes, stratified_split, subset
from core.errors import SpecError, TrainingError
from core.jobspec import JobCreate, validate_job
from core.losses import build_loss
from core.metrics import evaluate
from core.similarity import build_similarity
from core.storage import LocalStorage
from core.training import NoopHooks, TrainingSpec, TrainPlan, parse_training_spec, train
from core.training.splits import align_test_dataset, make_splits, three_way_split
from core.training.state import fingerprint

CLASSES = ["0", "1", "2", "3", "4"]
SIMILARITY = {"kind": "ordinal"}
LOSS = {"kind": "simloss"}
MODEL = {"kind": "mlp", "hidden": [32]}
SPLIT = {"val": 0.2, "test": 0.2, "seed": 42}
# checkpoint fingerprint of TrainingSpec(epochs=3, seed=7, batch_size=64) on these digits with
# cross_entropy and MODEL, as the engine computed it before `training.split` existed
FINGERPRINT_BEFORE_SPLITS = "2f9cd8fdaa0aeffcda77ba124dba01e4791e80f5233a019e76cfc6aa094793cf"


@pytest.fixture(scope="module")
def digits() -> ArrayDataset:
    return select_classes(load_builtin("digits"), CLASSES)


def plan(ds, *, test_dataset=None, **training) -> TrainPlan:
    spec = parse_training_spec({"epochs": 3, "seed": 7, "batch_size": 64, **training})
    return TrainPlan(ds, SIMILARITY, LOSS, MODEL, spec, device="cpu", test_dataset=test_dataset)


def strip_timing(history):
    return [{k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")} for r in history]


def recomputed(model, ds: ArrayDataset, rows: np.ndarray) -> dict:
    """evaluate() and the loss of `model` on exactly `rows` of `ds`, computed here from scratch."""
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(ds.x[rows]))).float()
    targets = torch.from_numpy(ds.y[rows])
    similarity = build_similarity(SIMILARITY, ds.classes)
    metrics = evaluate(logits, targets, similarity, ds.classes, similarity_spec=SIMILARITY)
    loss_fn = build_loss(LOSS, similarity, ds.classes, similarity_spec=SIMILARITY)
    metrics["loss"] = float(loss_fn(logits, targets))
    return metrics


def assert_metrics_equal(reported: dict, expected: dict) -> None:
    assert set(expected) <= set(reported)
    for key, value in expected.items():
        if isinstance(value, float):
            assert reported[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key
        else:
            assert reported[key] == value, key


# ---------------------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    "split",
    [{"test": 0.9}, {"test": -0.1}, {"val": 0.5, "test": 0.4}, {"val": 0.45, "test": 0.35}, {"test": "x"}],
)
def test_bad_split_fractions_name_training_split_test(split):
    with pytest.raises(SpecError) as info:
        parse_training_spec({"split": split})
    assert info.value.field == "training.split.test"
    assert info.value.status == 422


def test_split_spec_fields_and_defaults():
    for bad, field in [
        ({"split": {"val": 0.01}}, "training.split.val"),
        ({"split": {"seed": -1}}, "training.split.seed"),
        ({"split": {"sede": 1}}, "training.split.sede"),
        ({"split": {"val": 0.3}, "val_fraction": 0.2}, "training.val_fraction"),
    ]:
        with pytest.raises(SpecError) as info:
            parse_training_spec(bad)
        assert info.value.field == field, bad
    spec = parse_training_spec({"split": {"val": 0.3, "test": 0.1}})
    assert spec.val_fraction == 0.3 and spec.split.seed is None  # val_fraction follows split.val
    assert parse_training_spec({"split": {"val": 0.3}, "val_fraction": 0.3}).split.test == 0.0
    dumped = parse_training_spec({"split": SPLIT}).model_dump(mode="json")
    assert dumped["split"] == SPLIT and parse_training_spec(dumped).split.model_dump() == SPLIT
    assert "split" not in TrainingSpec().model_dump()  # an old spec dumps (and fingerprints) as before


# ----------------------------------------------------------------------------------------- the split


def test_three_way_split_is_stratified_disjoint_and_deterministic(digits):
    train_rows, val, test = three_way_split(digits.y, 0.2, 0.2, seed=42)
    assert len(np.intersect1d(train_rows, val)) == len(np.intersect1d(train_rows, test)) == 0
    assert len(np.intersect1d(val, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train_rows, val, test])), np.arange(digits.num_samples))
    for c, n in enumerate(digits.class_counts):
        assert (digits.y[test] == c).sum() == round(n * 0.2) and (digits.y[val] == c).sum() == round(n * 0.2)
    again = three_way_split(digits.y, 0.2, 0.2, seed=42)
    assert all(np.array_equal(a, b) for a, b in zip((train_rows, val, test), again))
    other = three_way_split(digits.y, 0.2, 0.2, seed=43)
    assert not np.array_equal(test, other[2])
    # the validation rows are those of the two-way split with the same seed
    assert np.array_equal(val, stratified_split(digits.y, 0.2, 42)[1])


def test_split_seed_is_independent_of_the_run_seed(digits):
    a = make_splits(digits, parse_training_spec({"seed": 1, "split": SPLIT}))
    b = make_splits(digits, parse_training_spec({"seed": 2, "split": SPLIT}))
    assert a.seed == b.seed == 42 and a.test_source == "split"
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test)))
    # no split seed: the run seed splits (today's behaviour), so runs of different seeds split apart
    no_seed = {"val": 0.2, "test": 0.2}
    c = make_splits(digits, parse_training_spec({"seed": 42, "split": no_seed}))
    d = make_splits(digits, parse_training_spec({"seed": 43, "split": no_seed}))
    assert c.seed == 42 and np.array_equal(c.test, a.test) and not np.array_equal(c.test, d.test)


def test_a_class_left_without_training_rows_is_a_clear_data_error():
    x = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    y = np.array([0] * 10 + [1] * 2)
    ds = ArrayDataset(x, y, ["big", "small"])
    with pytest.raises(TrainingError) as info:
        make_splits(ds, parse_training_spec({"seed": 0, "split": {"val": 0.3, "test": 0.3}}))
    assert info.value.code == "data_error"
    assert "training.split" in info.value.message and "'small'" in info.value.message


# ---------------------------------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def split_run(digits):
    return train(plan(digits, split=SPLIT))


def test_test_rows_are_disjoint_from_training_and_validation(digits, split_run):
    r = split_run
    assert r.test_source == "split" and r.split_seed == 42
    assert len(np.intersect1d(r.test_indices, r.train_indices)) == 0
    assert len(np.intersect1d(r.test_indices, r.val_indices)) == 0
    assert len(np.intersect1d(r.train_indices, r.val_indices)) == 0
    covered = np.concatenate([r.train_indices, r.val_indices, r.test_indices])
    assert np.array_equal(np.sort(covered), np.arange(digits.num_samples))
    assert np.array_equal(r.test_targets, digits.y[r.test_indices])


def test_test_metrics_are_evaluate_on_exactly_the_test_rows(digits, split_run):
    r, m = split_run, split_run.final_metrics
    assert m["evaluated_on"] == "test" and r.evaluated_on == "test"
    assert_metrics_equal(m, recomputed(r.model, digits, r.test_indices))
    assert np.array(m["confusion_matrix"]).sum() == len(r.test_indices) == m["count"]
    # the validation split's numbers, labelled, as the selected epoch measured them
    val = m["val"]
    assert "confusion_matrix" not in val and val["count"] == len(r.val_indices)
    assert r.best_epoch == 1 + int(np.argmin([h["val"]["loss"] for h in r.history]))
    assert val == r.history[r.best_epoch - 1]["val"]
    assert_metrics_equal(val, {k: v for k, v in recomputed(r.model, digits, r.val_indices).items()
                               if k != "confusion_matrix"})  # fmt: skip
    assert r.test_probs.shape == (len(r.test_indices), 5) and r.test_probs.dtype == np.float32


def test_training_and_selection_never_see_a_test_row(digits, split_run):
    """Replacing the test rows' features changes the test metrics and nothing else."""
    x = digits.x.copy()
    x[split_run.test_indices] = np.random.default_rng(1).uniform(0, 16, size=x[split_run.test_indices].shape)
    changed = ArrayDataset(x, digits.y, digits.classes)
    other = train(plan(changed, split=SPLIT))
    assert strip_timing(other.history) == strip_timing(split_run.history)
    assert other.best_epoch == split_run.best_epoch
    for k, v in split_run.model.state_dict().items():
        assert torch.equal(v, other.model.state_dict()[k]), k
    assert other.final_metrics["val"] == split_run.final_metrics["val"]
    assert other.final_metrics["loss"] != split_run.final_metrics["loss"]


def test_runs_of_one_split_seed_share_the_split_and_differ_in_initialisation(digits, split_run):
    other = train(plan(digits, split=SPLIT, seed=8))
    assert np.array_equal(other.test_indices, split_run.test_indices)
    assert np.array_equal(other.val_indices, split_run.val_indices)
    assert strip_timing(other.history) != strip_timing(split_run.history)


def test_a_resumed_run_reports_the_same_test_metrics(digits, split_run, tmp_path):
    checkpoints = CheckpointStore(LocalStorage(tmp_path), "jobs/split")

    class Crash(NoopHooks):
        def on_checkpoint(self, epoch):
            if epoch == 2:
                raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        train(plan(digits, split=SPLIT), Crash(), checkpoints)
    resumed = train(plan(digits, split=SPLIT), NoopHooks(), checkpoints)
    assert resumed.final_metrics == split_run.final_metrics
    assert np.array_equal(resumed.test_indices, split_run.test_indices)


def test_a_spec_without_split_trains_as_before(digits):
    spec = TrainingSpec(epochs=3, seed=7, batch_size=64)
    fp = fingerprint(digits, None, {"kind": "cross_entropy"}, {"kind": "mlp", "hidden": [32]}, spec)
    assert fp == FINGERPRINT_BEFORE_SPLITS
    p = TrainPlan(digits, None, {"kind": "cross_entropy"}, MODEL, spec, device="cpu")
    old = train(p)
    train_rows, val_rows = stratified_split(digits.y, spec.val_fraction, 7)
    assert np.array_equal(old.val_indices, val_rows) and np.array_equal(old.train_indices, train_rows)
    assert old.test_indices is None and old.test_source == "none" and old.split_seed == 7
    assert old.final_metrics["evaluated_on"] == "val" and "val" not in old.final_metrics
    # val_fraction is split.val without a test split: the same rows and the very same training
    p.training = parse_training_spec({"epochs": 3, "seed": 7, "batch_size": 64, "split": {"val": 0.2}})
    same = train(p)
    assert strip_timing(same.history) == strip_timing(old.history)
    assert same.final_metrics == old.final_metrics


# ------------------------------------------------------------------------------------- a test dataset


def test_a_test_dataset_gives_the_test_rows(digits):
    rows = np.arange(digits.num_samples)
    held_out = rows[rows % 5 == 0]
    train_ds, test_ds = subset(digits, rows[rows % 5 != 0]), subset(digits, held_out)
    # in another class order: aligned to the job's classes by name
    reordered = align_test_dataset(select_classes(test_ds, CLASSES[::-1]), CLASSES)
    assert reordered.classes == CLASSES and np.array_equal(reordered.y, test_ds.y)
    r = train(plan(train_ds, test_dataset=reordered))
    assert r.test_source == "test_dataset" and r.final_metrics["evaluated_on"] == "test"
    assert np.array_equal(r.test_indices, np.arange(test_ds.num_samples))
    assert_metrics_equal(r.final_metrics, recomputed(r.model, test_ds, r.test_indices))
    assert r.final_metrics["val"]["count"] == len(r.val_indices)
    assert np.array_equal(r.val_indices, stratified_split(train_ds.y, 0.2, 7)[1])


def test_a_test_dataset_that_does_not_fit_fails_clearly(digits):
    with pytest.raises(Exception) as info:
        align_test_dataset(select_classes(digits, ["0", "1"]), CLASSES)
    assert getattr(info.value, "field", None) == "test_dataset"
    images = select_classes(load_builtin("digits-images"), CLASSES)
    with pytest.raises(TrainingError) as info:
        train(plan(digits, test_dataset=images))
    assert info.value.code == "data_error" and "test_dataset" in info.value.message
    with pytest.raises(SpecError) as info:
        train(plan(digits, test_dataset=digits, split=SPLIT))
    assert info.value.field == "training.split.test"


def test_validate_job_checks_the_test_dataset():
    class Info:  # what core.dataset_store.DatasetInfo holds
        def __init__(self, classes, shape=(64,), dtype="float32"):
            self.classes, self.feature_shape, self.dtype = classes, list(shape), dtype

    base = {"dataset": "builtin:digits", "test_dataset": "builtin:digits-images", "classes": CLASSES}
    job = JobCreate.model_validate(base)
    assert validate_job(job, CLASSES, max_epochs=10, test_info=Info(CLASSES))["test_dataset"] == (
        "builtin:digits-images"
    )
    for body, info in [
        ({**base, "training": {"split": SPLIT}}, Info(CLASSES)),
        ({**base, "test_dataset": "builtin:digits"}, None),
        (base, Info(["0", "1"])),
        (base, Info(CLASSES, shape=(1, 8, 8))),
        (base, Info(CLASSES, dtype="uint8")),
    ]:
        with pytest.raises(SpecError) as err:
            validate_job(
                JobCreate.model_validate(body), CLASSES, max_epochs=10, feature_shape=[64],
                dtype="float32", test_info=info,
            )  # fmt: skip
        assert err.value.field == "test_dataset", body
    with pytest.raises(Exception) as err:
        JobCreate.model_validate({**base, "test_dataset": "../etc"})
    assert "test_dataset" in str(err.value)


# --------------------------------------------------------------------------------------- the artifacts


def _npz(path) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def test_artifacts_store_the_split_and_the_test_predictions(split_run, tmp_path):
    paths = write_artifacts(split_run, tmp_path)
    assert [p.name for p in paths] == list(ARTIFACT_FILES) and "splits.npz" in ARTIFACT_FILES
    splits = _npz(tmp_path / "splits.npz")
    assert np.array_equal(splits["train"], split_run.train_indices)
    assert np.array_equal(splits["val"], split_run.val_indices)
    assert np.array_equal(splits["test"], split_run.test_indices)
    assert str(splits["test_source"]) == "split" and int(splits["seed"]) == 42
    preds = _npz(tmp_path / "predictions.npz")
    assert np.array_equal(preds["indices"], split_run.val_indices)  # the keys of every version: val
    assert np.array_equal(preds["probs"], split_run.val_probs)
    assert np.array_equal(preds["test_indices"], split_run.test_indices)
    assert np.array_equal(preds["test_probs"], split_run.test_probs)
    assert np.array_equal(preds["test_targets"], split_run.test_targets)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["evaluated_on"] == "test" and metrics["final"]["evaluated_on"] == "test"
    assert metrics["splits"] == {
        "train": len(split_run.train_indices), "val": len(split_run.val_indices),
        "test": len(split_run.test_indices), "test_source": "split", "seed": 42,
    }  # fmt: skip


def test_artifacts_without_a_test_split(digits, tmp_path):
    r = train(plan(digits, epochs=1))
    write_artifacts(r, tmp_path)
    splits = _npz(tmp_path / "splits.npz")
    assert len(splits["test"]) == 0 and str(splits["test_source"]) == "none"
    assert np.array_equal(splits["val"], r.val_indices) and np.array_equal(splits["train"], r.train_indices)
    assert set(_npz(tmp_path / "predictions.npz")) == {"indices", "targets", "probs", "classes"}


# ------------------------------------------------------------------------------------------ the report


def _child(variant, seed, result) -> ChildRun:
    predictions = {"indices": result.val_indices, "targets": result.val_targets, "probs": result.val_probs}
    if result.test_indices is not None:
        predictions |= {
            "test_indices": result.test_indices,
            "test_targets": result.test_targets,
            "test_probs": result.test_probs,
        }
    return ChildRun(f"{variant}-{seed}", variant, seed, "succeeded", result.final_metrics,
                    result.history, predictions)  # fmt: skip


def _report(runs, seeds):
    return build_report(runs, classes=CLASSES, similarity_spec=SIMILARITY, seeds=seeds,
                        variants=["baseline", "other"], n_boot=50)  # fmt: skip


def test_the_report_uses_the_test_predictions(digits):
    seeds = [1, 2]
    runs = []
    for seed in seeds:
        runs.append(_child("baseline", seed, train(plan(digits, seed=seed, epochs=2, split=SPLIT))))
        runs.append(_child("other", seed, train(plan(digits, seed=seed, epochs=3, split=SPLIT))))
    report = _report(runs, seeds)
    assert report["evaluated_on"] == "test" and report["warnings"] == []
    d = report["variants"]["other"]["differences"]["accuracy"]
    # pooled over seeds of equal test size, the per-sample accuracy is the mean of the stored test ones
    stored = [r.metrics["accuracy"] for r in runs if r.variant == "other"]
    assert d["variant_value"] == pytest.approx(np.mean(stored), abs=1e-12)
    assert d["n"] == 2 * len(runs[0].predictions["test_indices"])


def test_the_report_warns_without_a_test_split(digits):
    runs = [_child(v, 1, train(plan(digits, seed=1, epochs=e))) for v, e in (("baseline", 1), ("other", 2))]
    report = _report(runs, [1])
    assert report["evaluated_on"] == "val" and report["warnings"] == [NO_TEST_WARNING]
    assert NO_TEST_WARNING == "no test split: numbers are from the validation split that selected the epoch"
