"""`MlflowTracker` against the real `mlflow server`: experiments found or created once, batches beyond
MLflow's per-call limits, truncated values accepted, and parent runs created once even when two workers
race to create the same one."""

from __future__ import annotations

import uuid

import pytest

from core.tracking.flatten import flat_params
from core.tracking.mlflow_tracker import MlflowTracker

pytestmark = [pytest.mark.slow]


def _experiment(tracker: MlflowTracker) -> str:
    return tracker.experiment_id(f"tests/{uuid.uuid4().hex[:8]}")


def test_an_experiment_is_created_once(mlflow_server):
    tracker = MlflowTracker(mlflow_server.uri)
    name = f"tests/{uuid.uuid4().hex[:8]}"
    first = tracker.experiment_id(name)
    assert MlflowTracker(mlflow_server.uri).experiment_id(name) == first
    mlflow_server.client().delete_experiment(first)
    with pytest.raises(RuntimeError, match="deleted"):
        tracker.experiment_id(name)


def test_batches_beyond_mlflows_limits_and_long_values(mlflow_server):
    tracker = MlflowTracker(mlflow_server.uri)
    exp = _experiment(tracker)
    run = tracker.open_run(exp, None, "big", {"simtrain.job_id": "j1"})
    params = flat_params({"p": {f"k{i}": i for i in range(250)}, "matrix": [[0.5] * 100] * 100})
    metrics = [("val.loss", 1.0 / step, step) for step in range(1, 2501)]
    tracker.log(run, params=params, metrics=metrics, tags={f"t{i}": str(i) for i in range(150)})
    got = mlflow_server.client().get_run(run)
    assert len(got.data.params) == 251 and got.data.params["p.k249"] == "249"
    assert got.data.params["matrix"].endswith("...") and got.data.tags["t149"] == "149"
    assert len(mlflow_server.client().get_metric_history(run, "val.loss")) == 2500
    assert tracker.open_run(exp, run, "ignored", {}) == run  # reopened, not a second run
    tracker.finish(run, "cancelled")
    assert mlflow_server.client().get_run(run).info.status == "KILLED"


def test_a_parent_run_is_created_once(mlflow_server):
    tracker = MlflowTracker(mlflow_server.uri)
    exp = _experiment(tracker)
    key = {"simtrain.group": f"comparison:{uuid.uuid4()}"}
    first = tracker.parent_run(exp, key, "comparison-1", {"simtrain.tenant": "t"}, {"seeds": "2"})
    assert tracker.parent_run(exp, key, "comparison-1", {}, {}) == first
    assert [r.info.run_id for r in tracker.find_runs(exp, key)] == [first]
    assert mlflow_server.client().get_run(first).data.params == {"seeds": "2"}


def test_two_workers_racing_for_a_parent_keep_the_oldest(mlflow_server, monkeypatch):
    """The second worker searched before the first one's run existed: it creates its own, sees both,
    keeps the older one and deletes its own."""
    tracker = MlflowTracker(mlflow_server.uri)
    exp = _experiment(tracker)
    key = {"simtrain.group": f"tuning:{uuid.uuid4()}"}
    older = tracker.client.create_run(exp, run_name="tuning-x", tags=dict(key)).info.run_id
    real = tracker.find_runs
    calls = []

    def stale_first_search(experiment_id, k):
        calls.append(k)
        return [] if len(calls) == 1 else real(experiment_id, k)

    monkeypatch.setattr(tracker, "find_runs", stale_first_search)
    assert tracker.parent_run(exp, key, "tuning-x", {}, {}) == older
    assert len(calls) == 2
    assert [r.info.run_id for r in real(exp, key)] == [older]  # the loser's run is deleted


def test_search_values_must_be_ids(mlflow_server):
    tracker = MlflowTracker(mlflow_server.uri)
    with pytest.raises(ValueError, match="tag value"):
        tracker.find_runs("0", {"simtrain.job_id": "x' or '1'='1"})
