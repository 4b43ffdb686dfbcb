"""Experiment tracking: each job as an MLflow run, comparisons and tuning studies as parent runs.

    from core.tracking.spec import TrackingSpec          # the job spec's `tracking` field
    from core.tracking.job_tracking import JobTracking   # the worker's side (worker.hooks.JobHooks)

- `spec.py`: `tracking: {"mlflow": {"experiment": ..., "run_name": ...}}` of a job;
- `flatten.py`: specs and metric records as MLflow params and metrics (dotted keys, MLflow's limits);
- `context.py`: a job's run read from the database (experiment, name, params, tags, parent run);
- `mlflow_tracker.py`: `MlflowTracker`, the `MlflowClient` calls, each bounded in time;
- `uri.py`: the check of `SIMTRAIN_MLFLOW_TRACKING_URI`;
- `job_tracking.py`: `JobTracking`, one job's run from start to end; failures are warnings, never errors.

Tracking is on when the server has `SIMTRAIN_MLFLOW_TRACKING_URI` (`core.settings`); the `mlflow`
package (or `mlflow-skinny`) is then needed by the workers: `pip install 'simtrain[tracking]'`. Nothing
here imports mlflow until a job is tracked.
"""

from core.tracking.spec import MlflowRunSpec, TrackingSpec

__all__ = ["MlflowRunSpec", "TrackingSpec"]
