"""Helpers of the tracking tests: the tenant's experiment names and waiting for MLflow runs to end.

experiment = tenant_experiment(stack, "simtrain")     # "<tenant name>/simtrain"
run = wait_run(mlflow_server, experiment, job_id)     # the job's run once it is no longer RUNNING
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["job_runs", "tenant_experiment", "wait_run"]


def tenant_experiment(stack, name: str = "simtrain") -> str:
    """The MLflow experiment a job of the stack's tenant named `name` goes to."""
    from core.auth import resolve_api_key
    from core.db.models import Tenant

    with stack.session() as s:
        tenant_id = resolve_api_key(s, stack.headers["Authorization"].split()[1])
        return f"{s.get(Tenant, tenant_id).name}/{name}"


def job_runs(server, experiment: str, job_id: str) -> list[Any]:
    return server.runs(experiment, f"tags.`simtrain.job_id` = '{job_id}'")


def wait_run(server, experiment: str, job_id: str, *, timeout: float = 120.0, stack=None) -> Any:
    """The job's (single) run once its status is no longer RUNNING (the worker ends it after the job)."""
    deadline = time.monotonic() + timeout
    runs: list[Any] = []
    while time.monotonic() < deadline:
        runs = job_runs(server, experiment, job_id)
        if runs and runs[0].info.status != "RUNNING":
            assert len(runs) == 1, [r.info.run_id for r in runs]
            return runs[0]
        time.sleep(0.5)
    logs = stack.logs() if stack is not None else ""
    raise AssertionError(f"no ended run for job {job_id} in {experiment!r}: {runs}\n{logs}")
