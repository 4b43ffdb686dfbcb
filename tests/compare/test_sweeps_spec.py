"""`core.compare.spec` / `core.compare.sweep` without a service: a variant's overrides make its own job
(similarity, loss, model replaced, training merged), a sweep expands every swept variant over the grid,
and what cannot be a job is refused naming the request field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.compare.spec import ComparisonCreate, arms, child_jobs, variants_public
from core.compare.sweep import MAX_CHILDREN, grid, point_label, schema_has_path
from core.errors import SpecError

SIM = {"kind": "ordinal", "reduction_factor": 0.5}
R = {"name": "r", "path": "similarity.reduction_factor", "values": [0, 0.5, 0.9]}


def req(**over) -> ComparisonCreate:
    body = {
        "dataset": "builtin:digits",
        "similarity": SIM,
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 2, "seed": 5, "learning_rate": 0.001},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 2,
    }
    return ComparisonCreate.model_validate(body | over)


def _loc(excinfo) -> str:
    return ".".join(str(p) for p in excinfo.value.errors()[0]["loc"])


def test_a_variant_overrides_similarity_loss_and_model_and_merges_training():
    variants = [
        {"name": "own", "loss": {"kind": "soft_labels"}, "similarity": {"kind": "ordinal", "reduction_factor": 0.1},
         "model": {"kind": "mlp", "hidden": [64, 32]}, "training": {"learning_rate": 0.01}},
        {"name": "plain", "loss": {"kind": "simloss"}},
    ]  # fmt: skip
    got = {a.name: a for a in arms(req(variants=variants))}
    assert list(got) == ["baseline", "own", "plain"]
    base, own, plain = got["baseline"].job, got["own"].job, got["plain"].job
    assert base.loss.kind == "cross_entropy" and base.similarity.reduction_factor == 0.5
    assert base.model.hidden == [16] and base.training.learning_rate == 0.001
    assert own.similarity.reduction_factor == 0.1 and own.model.hidden == [64, 32]
    assert own.training.learning_rate == 0.01 and own.training.epochs == 2  # merged, not replaced
    assert plain.similarity.reduction_factor == 0.5 and plain.model.hidden == [16]
    public = variants_public(req(variants=variants))
    assert public[1]["overrides"] == {
        "similarity": own.similarity.model_dump(mode="json"), "model": own.model.model_dump(mode="json"),
        "training": {"learning_rate": 0.01},
    }  # fmt: skip
    assert public[0]["overrides"] is None and public[2]["overrides"] is None


def test_a_sweep_expands_every_swept_variant_and_keeps_the_seeds_shared():
    variants = [
        {"name": "simloss", "loss": {"kind": "simloss"}},
        {"name": "soft", "loss": {"kind": "soft_labels"}, "swept": False},
    ]
    r = req(variants=variants, sweep=[R])
    trained = [a for a in arms(r) if a.trained]
    assert [a.name for a in trained] == ["baseline", "simloss@r=0", "simloss@r=0.5", "simloss@r=0.9", "soft"]
    assert [a.job.similarity.reduction_factor for a in trained] == [0.5, 0.0, 0.5, 0.9, 0.5]
    assert [a.point for a in trained] == [None, {"r": 0}, {"r": 0.5}, {"r": 0.9}, None]
    kids = child_jobs(r, [5, 6])
    assert len(kids) == 10 and [s for _, s, _ in kids] == [5] * 5 + [6] * 5
    assert all(job.training.seed == seed for _, seed, job in kids)
    assert kids[1][2].metadata == {"variant": "simloss@r=0", "seed": "5"}


def test_two_axes_make_a_grid_checked_axis_by_axis_first():
    lr = {"name": "lr", "path": "training.learning_rate", "values": [0.1, 0.01]}
    got = arms(req(sweep=[R, lr]))
    probes = [a for a in got if not a.trained]
    assert [a.field for a in probes] == [f"sweep.0.values.{j}" for j in range(3)] + [
        f"sweep.1.values.{j}" for j in range(2)
    ]
    trained = [a.name for a in got if a.trained]
    assert trained[0] == "baseline" and len(trained) == 1 + 6
    assert trained[1:3] == ["simloss@r=0,lr=0.1", "simloss@r=0,lr=0.01"]  # the first axis varies slowest
    assert grid([type("A", (), {"name": "a", "values": [1, 2]})(), type("B", (), {"name": "b", "values": [3]})()]) \
        == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]  # fmt: skip
    assert point_label("v", {"a": "x", "b": [1, 2]}) == "v@a=x,b=[1,2]"


def test_paths_must_exist_in_the_job_schema_and_not_be_shared():
    assert schema_has_path("similarity.reduction_factor") and schema_has_path("loss.components.1.weight")
    assert schema_has_path("training.grad_clip_norm")  # in the schema though left out of a default dump
    assert not schema_has_path("similarity.reduction_facter") and not schema_has_path("training.nope")
    for path in ("similarity.reduction_facter", "dataset", "classes.0", "training.seed", "training.val_fraction",
                 "metadata.x", "similarity"):  # fmt: skip
        with pytest.raises(ValidationError) as e:
            req(sweep=[{**R, "path": path}])
        assert _loc(e) == "sweep.0.path", path
    with pytest.raises(ValidationError) as e:
        req(sweep=[{**R, "values": [0.1, 0.1]}])
    assert _loc(e) == "sweep.0.values"
    with pytest.raises(ValidationError) as e:
        req(sweep=[R, R])
    assert _loc(e) == "sweep"
    with pytest.raises(ValidationError) as e:
        req(sweep=[R, {**R, "name": "a"}, {**R, "name": "b"}])
    assert _loc(e) == "sweep"


def test_the_grid_is_bounded():
    values = [round(0.01 * i, 2) for i in range(MAX_CHILDREN // 2)]  # 100 points x 2 seeds + 2 > 200
    with pytest.raises(ValidationError) as e:
        req(sweep=[{**R, "values": values}])
    assert _loc(e) == "sweep" and "at most 200" in str(e.value)
    ok = req(sweep=[{**R, "values": values[:99]}])  # (1 + 99) x 2 = 200
    assert len(child_jobs(ok, [1, 2])) == MAX_CHILDREN
    with pytest.raises(ValidationError) as e:  # nothing to sweep
        req(sweep=[R], variants=[{"name": "soft", "loss": {"kind": "soft_labels"}, "swept": False}])
    assert _loc(e) == "sweep"


def test_values_and_overrides_that_make_no_job_name_the_request_field():
    with pytest.raises(SpecError) as e:
        arms(req(sweep=[{**R, "values": [0.5, 1.5]}]))
    assert e.value.field == "sweep.0.values.1"
    assert "similarity.reduction_factor = 1.5" in e.value.reason and "simloss" in e.value.reason
    groups = {"kind": "groups", "groups": [["0", "1"]], "within": 0.5}
    with pytest.raises(SpecError) as e:  # the variant's own similarity has no reduction factor
        arms(req(sweep=[R], variants=[{"name": "g", "loss": {"kind": "simloss"}, "similarity": groups}]))
    assert e.value.field == "sweep.0.path" and "'g'" in e.value.reason
    with pytest.raises(SpecError) as e:  # no similarity at all to set the reduction factor in
        arms(req(sweep=[R], similarity=None, variants=[{"name": "ce", "loss": {"kind": "cross_entropy"}}]))
    assert e.value.field == "sweep.0.path" and "no 'similarity'" in e.value.reason
    flip = {"name": "flip", "path": "training.augment.horizontal_flip", "values": [True, False]}
    assert arms(req(sweep=[flip]))[1].job.training.augment.horizontal_flip  # a field a value alone makes
    lr = {"name": "lr", "path": "training.learning_rate", "values": [0.1, -1]}
    with pytest.raises(SpecError) as e:  # two axes: the bad value is named on its own axis
        arms(req(sweep=[R, lr]))
    assert e.value.field == "sweep.1.values.1" and "training.learning_rate = -1" in e.value.reason
    with pytest.raises(SpecError) as e:
        arms(req(variants=[{"name": "v", "loss": {"kind": "simloss"}, "training": {"learning_rate": -1}}]))
    assert e.value.field == "variants.0.training.learning_rate"
    with pytest.raises(ValidationError) as e:
        req(variants=[{"name": "v", "loss": {"kind": "simloss"}, "training": {"seed": 3}}])
    assert _loc(e) == "variants.0.training"
    with pytest.raises(ValidationError) as e:
        req(variants=[{"name": "v", "loss": {"kind": "simloss"}, "similarity": {"kind": "ordinal", "x": 1}}])
    assert _loc(e).startswith("variants.0.similarity")
    with pytest.raises(ValidationError) as e:  # the baseline is the base spec, never overridden
        req(variants=[{"name": "baseline", "loss": {"kind": "cross_entropy"}, "model": {"kind": "linear"}}])
    assert _loc(e) == "variants"
