"""`JobTracking` (what the worker's hooks call) on a real database, without a worker: the job spec
asking for tracking on a server that has none, a closed tracking port (one warning per outage, bounded
time, epochs kept for later), and a tuning study's trials nested under one parent run that ends with
the study (against the real `mlflow server`)."""

from __future__ import annotations

import time
import uuid

import pytest
from tracking_testlib import tenant_experiment
from worker_testlib import free_port, job_body

from core.auth import resolve_api_key
from core.db import jobs as jobdb
from core.db.models import Job, TuningStudy
from core.tracking.job_tracking import RETRY_AFTER_S, JobTracking

RECORD = {
    "epoch": 1,
    "train": {"loss": 0.9},
    "val": {"loss": 1.1, "accuracy": 0.5},
    "lr": 0.1,
    "seconds": 0.2,
}


def _tracking(stack, job_id: str, uri: str) -> tuple[JobTracking, list[str], object]:
    warnings: list[str] = []
    session = stack.Session()
    return JobTracking(session, job_id, warn=warnings.append, uri=uri), warnings, session


def test_a_job_asking_for_tracking_on_a_server_without_it_gets_a_warning(stack_factory):
    stack = stack_factory("sqlite")
    body = job_body(epochs=1)
    body["tracking"] = {"mlflow": {"experiment": "x"}}
    tracking, warnings, session = _tracking(stack, stack.insert_job(body), uri="")
    tracking.start({})
    tracking.log_epoch(1, RECORD)
    tracking.end()
    assert len(warnings) == 1 and "SIMTRAIN_MLFLOW_TRACKING_URI" in warnings[0]
    quiet, none, _ = _tracking(stack, stack.insert_job(job_body(epochs=1)), uri="")
    quiet.start({})
    assert none == []
    session.close()


@pytest.mark.slow
def test_a_closed_tracking_port_costs_bounded_time_and_one_warning(stack_factory):
    stack = stack_factory("sqlite")
    tracking, warnings, session = _tracking(
        stack, stack.insert_job(job_body(epochs=3)), f"http://127.0.0.1:{free_port()}"
    )
    t0 = time.monotonic()
    tracking.start({})
    started = time.monotonic() - t0
    for epoch in (1, 2, 3):
        tracking.log_epoch(epoch, {**RECORD, "epoch": epoch})
    paused = time.monotonic() - t0 - started
    assert started < 30 and paused < 1.0  # one bounded attempt, then no calls during the pause
    assert len(warnings) == 1 and "starting the run failed" in warnings[0]
    assert len(tracking._pending) == 3 * 5  # train.loss, val.loss, val.accuracy, lr, seconds per epoch
    assert tracking._retry_at - time.monotonic() <= RETRY_AFTER_S
    session.close()


@pytest.mark.slow
def test_tuning_trials_are_nested_under_the_studys_run(stack_factory, mlflow_server):
    stack = stack_factory("sqlite")
    with stack.session() as s:
        tenant = resolve_api_key(s, stack.headers["Authorization"].split()[1])
        study = TuningStudy(
            id=str(uuid.uuid4()), tenant_id=tenant, status="running",
            spec={"trials": 2, "request": {"dataset": "builtin:digits", "trials": 2, "objective": {"metric": "accuracy"}}},
        )  # fmt: skip
        s.add(study)
        s.commit()
        jobs = []
        for number in (0, 1):
            spec = {"dataset": "builtin:digits", "training": {"epochs": 1, "seed": 3},
                    "metadata": {"tuning": {"study": study.id, "trial": number}}}  # fmt: skip
            job = jobdb.create_job(s, tenant_id=tenant, dataset_ref="builtin:digits", spec=spec, epochs=1,
                                   max_attempts=3, idempotency_key=f"tuning:{study.id}:{number}")  # fmt: skip
            jobs.append(job.id)
        s.commit()
    experiment = tenant_experiment(stack)
    client = mlflow_server.client()
    trackers = []
    for job_id in jobs:
        tracking, warnings, _ = _tracking(stack, job_id, mlflow_server.uri)
        tracking.start({})
        tracking.log_epoch(1, RECORD)
        assert warnings == []
        trackers.append(tracking)
    parents = mlflow_server.runs(experiment, f"tags.`simtrain.group` = 'tuning:{study.id}'")
    assert len(parents) == 1 and parents[0].info.run_name == f"tuning-{study.id[:8]}"
    parent = parents[0].info.run_id
    assert parents[0].data.params["objective.metric"] == "accuracy"
    for number, tracking in enumerate(trackers):
        run = client.get_run(tracking.run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent and run.info.run_name == f"trial-{number}"
        assert run.data.tags["simtrain.tuning_study_id"] == study.id
        assert run.data.tags["simtrain.tuning_trial"] == str(number)

    for i, (job_id, tracking) in enumerate(zip(jobs, trackers, strict=True)):
        with stack.session() as s:
            job = s.get(Job, job_id)
            job.status, job.epoch, job.final_metrics = ("succeeded", "cancelled")[i], 1, {"accuracy": 0.75}
            s.commit()
        tracking.end()
        expected_parent = "RUNNING" if i == 0 else "FINISHED"  # ended with the study's last trial
        assert client.get_run(parent).info.status == expected_parent
    assert [client.get_run(t.run_id).info.status for t in trackers] == ["FINISHED", "KILLED"]
    assert client.get_run(trackers[0].run_id).data.metrics["accuracy"] == 0.75
