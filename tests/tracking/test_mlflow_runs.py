"""Jobs tracked in a real `mlflow server` (SQLite backend, local artifacts) by real `celery worker`
processes on the embedded default: a job's run (params, per-epoch metrics with steps, final metrics,
artifacts, tags), a comparison's children nested under one parent run, a resumed job continuing its
run, and an unreachable tracking server that leaves the job `succeeded` with a warning event."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tracking_testlib import job_runs, tenant_experiment, wait_run
from worker_testlib import SLOW_MODEL, free_port, job_body

pytestmark = [pytest.mark.slow]

ARTIFACTS = {"model.safetensors", "model.json", "model.onnx", "metrics.json", "curves.png", "confusion.png"}


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_a_job_is_one_run_with_its_spec_epochs_final_metrics_artifacts_and_tags(stack_factory, mlflow_server):
    stack = stack_factory("sqlite")
    stack.start_worker(mlflow_tracking_uri=mlflow_server.uri)
    body = job_body(epochs=3, seed=5, similarity={"kind": "ordinal", "reduction_factor": 0.5},
                    loss={"kind": "simloss"})  # fmt: skip
    body["tracking"] = {"mlflow": {"experiment": "ordinal-digits", "run_name": "simloss-digits"}}
    body["metadata"] = {"team": "vision"}
    job_id = stack.submit(body)
    job = stack.wait_status(job_id, "succeeded", "failed", timeout=180)
    assert job["status"] == "succeeded", job
    experiment = tenant_experiment(stack, "ordinal-digits")
    run = wait_run(mlflow_server, experiment, job_id, stack=stack)
    client = mlflow_server.client()

    assert run.info.status == "FINISHED" and run.info.run_name == "simloss-digits"
    params = run.data.params
    assert params["loss.kind"] == "simloss" and params["training.epochs"] == "3"
    assert params["training.seed"] == "5" and params["similarity.reduction_factor"] == "0.5"
    assert params["model.hidden"] == "[32]" and params["dataset"] == "builtin:digits"
    assert params["tracking.mlflow.experiment"] == "ordinal-digits"

    r = stack.client.get(f"/v1/jobs/{job_id}/metrics", headers=stack.headers)
    epochs = {e["epoch"]: e["metrics"] for e in r.json()["epochs"]}
    val_loss = _history(client, run.info.run_id, "val.loss")
    assert [step for step, _ in val_loss] == [1, 2, 3]
    assert [v for _, v in val_loss] == pytest.approx([epochs[e]["val"]["loss"] for e in (1, 2, 3)])
    assert [s for s, _ in _history(client, run.info.run_id, "train.loss")] == [1, 2, 3]
    assert [s for s, _ in _history(client, run.info.run_id, "lr")] == [1, 2, 3]

    final = stack.job_row(job_id)["final_metrics"]
    for key in ("accuracy", "loss", "macro_f1"):
        assert run.data.metrics[key] == pytest.approx(final[key]), key
    assert _history(client, run.info.run_id, "accuracy")[0][0] == 3  # final metrics at the last epoch

    stored = {a["name"] for a in stack.artifacts(job_id)}
    logged = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert ARTIFACTS <= stored and stored == logged
    model = client.download_artifacts(run.info.run_id, "model.safetensors", str(stack.tmp))
    assert Path(model).read_bytes() == stack.download(job_id, "model.safetensors")

    tags = run.data.tags
    assert tags["simtrain.job_id"] == job_id and tags["simtrain.seed"] == "5"
    assert tags["simtrain.tenant"] == experiment.split("/")[0] and tags["simtrain.tenant_id"]
    assert tags["simtrain.status"] == "succeeded" and tags["meta.team"] == "vision"
    assert "mlflow.parentRunId" not in tags
    recorded = [e for e in stack.events(job_id, "info") if (e.data or {}).get("mlflow")]
    assert [e.data["mlflow"]["run_id"] for e in recorded] == [run.info.run_id]
    assert not [e for e in stack.events(job_id, "warning") if "tracking" in e.message]


def test_a_comparisons_children_are_nested_under_one_parent_run(stack_factory, mlflow_server):
    stack = stack_factory("sqlite")
    stack.start_worker(mlflow_tracking_uri=mlflow_server.uri)
    body = {
        "dataset": "builtin:digits",
        "similarity": {"kind": "ordinal", "reduction_factor": 0.5},
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 2, "seed": 11, "batch_size": 128},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 1,
        "metadata": {"study": "nesting"},
    }
    r = stack.client.post("/v1/comparisons", json=body, headers=stack.headers)
    assert r.status_code == 201, r.text
    comp_id = r.json()["id"]
    kids = r.json()["children"]
    assert len(kids) == 2
    experiment = tenant_experiment(stack)
    runs = {
        k["variant"]: wait_run(mlflow_server, experiment, k["job_id"], timeout=240, stack=stack) for k in kids
    }

    parents = mlflow_server.runs(experiment, f"tags.`simtrain.group` = 'comparison:{comp_id}'")
    assert len(parents) == 1, parents
    parent = parents[0]
    assert parent.info.run_name == f"comparison-{comp_id[:8]}"
    assert parent.data.tags["simtrain.comparison_id"] == comp_id
    assert parent.data.params["variants"].startswith("[") and parent.data.params["seeds"] == "1"
    for variant, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["simtrain.comparison_id"] == comp_id
        assert run.data.tags["simtrain.variant"] == variant and run.data.tags["simtrain.seed"] == "11"
        assert run.info.run_name == f"{variant}-seed11"
    deadline = time.monotonic() + 60
    while mlflow_server.client().get_run(parent.info.run_id).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the parent run was not ended with its last child"
        time.sleep(0.5)
    assert mlflow_server.client().get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_resumed_job_continues_its_run(stack_factory, mlflow_server):
    stack = stack_factory("sqlite")
    first = stack.start_worker(mlflow_tracking_uri=mlflow_server.uri)
    job_id = stack.submit(job_body(epochs=6, model=SLOW_MODEL, batch_size=32))
    stack.wait_epoch(job_id, 2, timeout=180)
    first.terminate()  # warm shutdown: the job is released at its next epoch end, queued again
    assert first.wait(120) is not None, stack.logs()
    assert stack.job_row(job_id)["status"] == "queued"
    experiment = tenant_experiment(stack)
    assert [r.info.status for r in job_runs(mlflow_server, experiment, job_id)] == ["RUNNING"]

    stack.start_worker("w2", mlflow_tracking_uri=mlflow_server.uri)
    job = stack.wait_status(job_id, "succeeded", "failed", timeout=300)
    assert job["status"] == "succeeded", job
    run = wait_run(mlflow_server, experiment, job_id, stack=stack)
    assert run.info.status == "FINISHED"
    steps = {s for s, _ in _history(mlflow_server.client(), run.info.run_id, "val.loss")}
    assert steps == {1, 2, 3, 4, 5, 6}
    recorded = [e for e in stack.events(job_id, "info") if (e.data or {}).get("mlflow")]
    assert len(recorded) == 1 and recorded[0].data["mlflow"]["run_id"] == run.info.run_id


def test_an_unreachable_tracking_server_leaves_the_job_succeeded_with_a_warning(stack_factory):
    stack = stack_factory("sqlite")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    stack.start_worker(mlflow_tracking_uri=closed)
    body = job_body(epochs=3)
    body["tracking"] = {"mlflow": {"experiment": "nowhere"}}
    t0 = time.monotonic()
    job_id = stack.submit(body)
    job = stack.wait_status(job_id, "succeeded", "failed", timeout=180)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert time.monotonic() - t0 < 120  # bounded: a few seconds per attempt, one pause after a failure
    warnings = [e.message for e in stack.events(job_id, "warning") if "experiment tracking" in e.message]
    assert len(warnings) == 1, warnings  # one warning per outage, not one per epoch
    assert "training goes on" in warnings[0]
    assert {a["name"] for a in stack.artifacts(job_id)} >= ARTIFACTS
