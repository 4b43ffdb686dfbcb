"""`MlflowTracker`: the MLflow calls simtrain makes, through `mlflow.tracking.MlflowClient` only.

    tracker = MlflowTracker("http://mlflow:5000")
    exp = tracker.experiment_id("acme/simtrain")                       # found or created
    parent = tracker.parent_run(exp, {"simtrain.group": "comparison:<id>"}, "comparison-1a2b", tags, params)
    run = tracker.open_run(exp, None, "job-1a2b", {**tags, "mlflow.parentRunId": parent})
    tracker.log(run, metrics=[("val.loss", 0.41, 3)], params={"loss.kind": "simloss"}, tags={...})
    tracker.log_files(run, [Path("model.safetensors"), Path("curves.png")])
    tracker.finish(run, "succeeded")                                    # FINISHED / FAILED / KILLED

No global MLflow state (`mlflow.start_run`, `mlflow.set_tracking_uri`): a worker runs many jobs, one
client per tracker. Every HTTP call is bounded by MLflow's own settings, given defaults here when the
environment has none: `MLFLOW_HTTP_REQUEST_TIMEOUT` 10 s, `MLFLOW_HTTP_REQUEST_MAX_RETRIES` 2,
`MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR` 1 (so an unreachable server costs a few seconds per call), and
`MLFLOW_DISABLE_TELEMETRY` true. Errors are MLflow's (`MlflowException`, connection errors): the caller
(`core.tracking.job_tracking`) turns them into warnings.

A parent run (a comparison or a tuning study) is found by its key tag and created once: two workers
that create it at the same time both search again and keep the oldest, the other one is deleted.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["HTTP_DEFAULTS", "RUN_STATUS", "MlflowTracker"]

HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
RUN_STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "cancelled": "KILLED"}
"""A simtrain terminal status (job, comparison or study) -> the MLflow run status."""

_BATCH_PARAMS = 100  # MLflow's MAX_PARAMS_TAGS_PER_BATCH (params and tags each)
_BATCH_METRICS = 1000  # MAX_METRICS_PER_BATCH
_FILTER_VALUE = re.compile(r"^[\w:.\-]{1,250}$")


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowTracker:
    """The MLflow client calls of experiment tracking (see the module docstring)."""

    def __init__(self, tracking_uri: str) -> None:
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri)

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called `name`, created when there is none."""
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            try:
                return self.client.create_experiment(name)
            except MlflowException as exc:  # created meanwhile by another worker
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = self.client.get_experiment_by_name(name)
        if exp is None or exp.lifecycle_stage != "active":
            raise RuntimeError(f"the MLflow experiment {name!r} is deleted; restore it or use another name")
        return exp.experiment_id

    def find_runs(self, experiment_id: str, key: Mapping[str, str]) -> list[Any]:
        """The active runs of the experiment whose tags equal `key` (ids and the like), oldest first."""
        for value in key.values():
            if not _FILTER_VALUE.match(value):
                raise ValueError(f"not a usable tag value for a search: {value!r}")
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in key.items())
        runs = self.client.search_runs([experiment_id], filter_string=query, max_results=100)
        return sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id))

    def open_run(self, experiment_id: str, run_id: str | None, run_name: str, tags: Mapping[str, str]) -> str:
        """Create the run, or mark an existing one (a resumed job's) RUNNING again; its id."""
        if run_id:
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        return self.client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id

    def parent_run(
        self,
        experiment_id: str,
        key: Mapping[str, str],
        run_name: str,
        tags: Mapping[str, str],
        params: Mapping[str, str],
    ) -> str:
        """The run tagged `key`, created once (the oldest wins a race; see the module docstring)."""
        found = self.find_runs(experiment_id, key)
        if found:
            return found[0].info.run_id
        mine = self.client.create_run(experiment_id, run_name=run_name, tags={**tags, **key}).info.run_id
        winner = (self.find_runs(experiment_id, key) or [None])[0]
        if winner is not None and winner.info.run_id != mine:
            self.client.delete_run(mine)
            return winner.info.run_id
        self.log(mine, params=params)
        return mine

    def log(
        self,
        run_id: str,
        *,
        metrics: Sequence[tuple[str, float, int]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Metrics `(key, value, step)`, params and tags, in batches within MLflow's limits."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        for part in _chunks([Param(k, v) for k, v in (params or {}).items()], _BATCH_PARAMS):
            self.client.log_batch(run_id, params=list(part))
        for part in _chunks([RunTag(k, v) for k, v in (tags or {}).items()], _BATCH_PARAMS):
            self.client.log_batch(run_id, tags=list(part))
        entities = [Metric(k, float(v), now, int(step)) for k, v, step in metrics]
        for part in _chunks(entities, _BATCH_METRICS):
            self.client.log_batch(run_id, metrics=list(part))

    def log_files(self, run_id: str, paths: Iterable[Path]) -> None:
        """Upload files as the run's artifacts (at the top of its artifact tree)."""
        for path in paths:
            self.client.log_artifact(run_id, str(path))

    def finish(self, run_id: str, status: str) -> None:
        """End the run with the MLflow status of a simtrain terminal `status`."""
        self.client.set_terminated(run_id, status=RUN_STATUS[str(status)])

    def run_url(self, experiment_id: str, run_id: str) -> str | None:
        """The run's page in the MLflow UI, for an http(s) tracking server."""
        if not self.uri.startswith(("http://", "https://")):
            return None
        return f"{self.uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
