"""Comparisons and tuning studies with `tracking`: their children carry the experiment (not the run
name), nest under one parent run named by `tracking.mlflow.run_name` in that experiment, and the parent
gets the group's summary when its last child ends (against the real `mlflow server`). The requests go
through the real API; the children's runs are driven by `JobTracking` (what the worker's hooks call),
without a worker. A tracking failure is a warning on the child and the comparison still succeeds.
"""

from __future__ import annotations

import pytest
from tracking_testlib import tenant_experiment

from core.db.models import Job
from core.tracking.job_tracking import JobTracking
from core.tuning import driver

RECORD = {"epoch": 1, "train": {"loss": 0.9}, "val": {"loss": 1.1, "accuracy": 0.5}, "lr": 0.1}
COMPARISON = {
    "dataset": "builtin:digits",
    "similarity": {"kind": "ordinal"},
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"epochs": 1, "seed": 5},
    "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
    "seeds": 2,
}
STUDY = {
    "dataset": "builtin:digits",
    "model": {"kind": "mlp", "hidden": [8]},
    "training": {"epochs": 1},
    "search_space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
    "objective": {"metric": "accuracy", "direction": "maximize"},
    "trials": 2,
    "parallel": 2,
    "seed": 3,
}


def _start(stack, job_id: str, uri: str) -> tuple[JobTracking, list[str]]:
    warnings: list[str] = []
    tracking = JobTracking(stack.Session(), job_id, warn=warnings.append, uri=uri)
    tracking.start({})
    tracking.log_epoch(1, RECORD)
    return tracking, warnings


def _finish(stack, tracking: JobTracking, status: str, accuracy: float) -> None:
    with stack.session() as s:
        job = s.get(Job, tracking.job_id)
        job.status, job.epoch, job.final_metrics = status, 1, {"accuracy": accuracy}
        s.commit()
    tracking.end()


def _specs(stack, job_ids: list[str]) -> list[dict]:
    with stack.session() as s:
        return [s.get(Job, j).spec for j in job_ids]


def test_a_comparisons_children_nest_under_its_named_parent_run(stack_factory, mlflow_server):
    stack = stack_factory("sqlite")
    tracking = {"mlflow": {"experiment": "ordinal-study", "run_name": "simloss-vs-ce"}}
    body = {**COMPARISON, "tracking": tracking}
    r = stack.client.post("/v1/comparisons", json=body, headers=stack.headers)
    assert r.status_code == 201, r.text
    comp_id, kids = r.json()["id"], r.json()["children"]
    assert len(kids) == 4  # (baseline, simloss) x 2 seeds
    ids = [k["job_id"] for k in kids]
    for spec in _specs(stack, ids):  # the experiment, not the parent's run name
        assert spec["tracking"] == {"mlflow": {"experiment": "ordinal-study", "run_name": None}}
    experiment = tenant_experiment(stack, "ordinal-study")
    trackers = [_start(stack, job_id, mlflow_server.uri) for job_id in ids]
    assert all(w == [] for _, w in trackers)

    parents = mlflow_server.runs(experiment, f"tags.`simtrain.group` = 'comparison:{comp_id}'")
    assert len(parents) == 1 and parents[0].info.run_name == "simloss-vs-ce"
    parent_id = parents[0].info.run_id
    assert parents[0].data.params["tracking.mlflow.run_name"] == "simloss-vs-ce"
    client = mlflow_server.client()
    for kid, (tracking, _) in zip(kids, trackers, strict=True):
        run = client.get_run(tracking.run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        assert run.info.experiment_id == parents[0].info.experiment_id
        assert run.info.run_name == f"{kid['variant']}-seed{run.data.tags['simtrain.seed']}"
    accuracy = {ids[0]: 0.6, ids[1]: 0.7, ids[2]: 0.8, ids[3]: 0.9}
    for i, (tracking, _) in enumerate(trackers):
        _finish(stack, tracking, "succeeded", accuracy[tracking.job_id])
        assert client.get_run(parent_id).info.status == ("FINISHED" if i == 3 else "RUNNING")
    metrics = client.get_run(parent_id).data.metrics
    assert metrics["children.succeeded"] == 4
    by_variant = {}
    for kid in kids:
        by_variant.setdefault(kid["variant"], []).append(accuracy[kid["job_id"]])
    for variant, values in by_variant.items():
        assert metrics[f"{variant}.accuracy"] == pytest.approx(sum(values) / len(values))


def test_a_studys_trials_nest_under_its_named_parent_run_with_the_best_value(stack_factory, mlflow_server):
    stack = stack_factory("sqlite")
    body = {**STUDY, "tracking": {"mlflow": {"experiment": "lr-search", "run_name": "lr-study"}}}
    r = stack.client.post("/v1/tuning", json=body, headers=stack.headers)
    assert r.status_code in (201, 202), r.text
    study_id = r.json()["id"]
    sent: list[str] = []
    with stack.session() as s:
        driver.run_step(s, stack.settings, study_id, send=sent.append)
    assert len(sent) == 2
    for spec in _specs(stack, sent):
        assert spec["tracking"] == {"mlflow": {"experiment": "lr-search", "run_name": None}}
    experiment = tenant_experiment(stack, "lr-search")
    trackers = [_start(stack, job_id, mlflow_server.uri)[0] for job_id in sent]
    parents = mlflow_server.runs(experiment, f"tags.`simtrain.group` = 'tuning:{study_id}'")
    assert len(parents) == 1 and parents[0].info.run_name == "lr-study"
    client = mlflow_server.client()
    for tracking in trackers:
        run = client.get_run(tracking.run_id)
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.run_name.startswith("trial-")
    for tracking, accuracy in zip(trackers, (0.4, 0.85), strict=True):
        _finish(stack, tracking, "succeeded", accuracy)
    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best.accuracy"] == 0.85 and parent.data.metrics["children.succeeded"] == 2


def test_without_a_tracking_server_a_comparison_child_warns_and_the_comparison_succeeds(stack_factory):
    stack = stack_factory("sqlite")
    body = {**COMPARISON, "seeds": 1, "tracking": {"mlflow": {"experiment": "nowhere"}}}
    r = stack.client.post("/v1/comparisons", json=body, headers=stack.headers)
    assert r.status_code == 201, r.text
    comp_id = r.json()["id"]
    for kid in r.json()["children"]:
        tracking, warnings = _start(stack, kid["job_id"], uri="")
        assert len(warnings) == 1 and "SIMTRAIN_MLFLOW_TRACKING_URI" in warnings[0]
        _finish(stack, tracking, "succeeded", 0.7)
    r = stack.client.get(f"/v1/comparisons/{comp_id}", headers=stack.headers)
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


def test_a_comparison_without_tracking_gives_its_children_none(stack_factory):
    stack = stack_factory("sqlite")
    r = stack.client.post("/v1/comparisons", json={**COMPARISON, "seeds": 1}, headers=stack.headers)
    assert r.status_code == 201, r.text
    specs = _specs(stack, [k["job_id"] for k in r.json()["children"]])
    assert [spec["tracking"] for spec in specs] == [None, None]
    bad = {**COMPARISON, "tracking": {"mlflow": {"run_name": "a\nb"}}}
    r = stack.client.post("/v1/comparisons", json=bad, headers=stack.headers)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "tracking.mlflow.run_name"
