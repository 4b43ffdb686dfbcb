"""Tuning studies end to end: the real API, real `celery worker` subprocesses, Optuna's RDB storage in the
same database. A study of 12 trials, 2 at a time, with the median pruner completes on PostgreSQL + Redis
and on the embedded default (SQLite + the SQLAlchemy broker; started and watched with `simtrain tune`);
its best trial is the best of the children's stored values; a pruned trial's job ends `cancelled` with
error `pruned`; cancel stops a study; a worker killed mid-trial leaves the study consistent."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner
from worker_testlib import FAST_FAULTS, SLOW_MODEL

from cli.app import app
from cli.connect import Overrides

pytestmark = [pytest.mark.slow]

TERMINAL = ("succeeded", "failed", "cancelled")
STATE_OF_JOB = {"succeeded": "complete", "failed": "fail"}


def _study(stack, study_id: str) -> dict:
    r = stack.client.get(f"/v1/tuning/{study_id}", headers=stack.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _wait(stack, study_id: str, until=lambda s: s["status"] in TERMINAL, timeout: float = 200.0) -> dict:
    deadline = time.monotonic() + timeout
    study = _study(stack, study_id)
    while time.monotonic() < deadline:
        study = _study(stack, study_id)
        if until(study):
            return study
        time.sleep(0.3)
    raise AssertionError(f"study {study_id}: {study['status']} {study['progress']}\n{stack.logs()}")


def _workers(stack, *names: str) -> list:
    """Start the workers side by side (each takes seconds to import torch), then wait for them all."""
    workers = [stack.start_worker(name, ready=False) for name in names]
    return [w.wait_ready() for w in workers]


def _twelve_trials(tuning_body) -> dict:
    return tuning_body(
        training={"epochs": 2, "batch_size": 128},
        search_space={"training.learning_rate": {"type": "float", "low": 1e-5, "high": 0.1, "log": True}},
        trials=12, parallel=2, pruner="median", seed=5,
    )  # fmt: skip


def _check_consistent(stack, study: dict, planned: int) -> dict[str, dict]:
    """Every trial finished with exactly one job whose end matches the trial's state; at most `parallel`
    trials were in flight at any time; the best trial is the best of the children's stored values."""
    trials = study["trials"]
    assert len(trials) == planned and all(t["state"] in ("complete", "pruned", "fail") for t in trials), (
        trials
    )
    assert len({t["job_id"] for t in trials}) == planned
    jobs = {t["job_id"]: stack.get(t["job_id"]) for t in trials}
    for t in trials:
        job = jobs[t["job_id"]]
        assert job["spec"]["metadata"]["tuning"] == {"study": study["id"], "trial": t["number"]}
        if t["state"] == "pruned":
            assert job["status"] == "cancelled" and job["error"]["code"] == "pruned", job
        else:
            assert STATE_OF_JOB[job["status"]] == t["state"], (t, job["status"])
    events = sorted([(t["started_at"], 1) for t in trials] + [(t["finished_at"], -1) for t in trials])
    in_flight = [sum(d for _, d in events[: i + 1]) for i in range(len(events))]
    assert max(in_flight) <= study["parallel"], events
    stored = {jid: j["final_metrics"]["accuracy"] for jid, j in jobs.items() if j["status"] == "succeeded"}
    best = max(stored, key=stored.get)
    assert study["best_trial"]["job_id"] == best and study["best_trial"]["value"] == stored[best]
    return jobs


def test_a_twelve_trial_study_completes_on_postgres_and_redis(stack_factory, tuning_body):
    stack = stack_factory("postgres", **FAST_FAULTS)
    _workers(stack, "w1", "w2")
    r = stack.client.post("/v1/tuning", json=_twelve_trials(tuning_body), headers=stack.headers)
    assert r.status_code == 201, r.text
    study = _wait(stack, r.json()["id"])
    assert study["status"] == "succeeded", study
    _check_consistent(stack, study, 12)
    assert study["progress"]["pruned"] >= 1, [t["intermediate"] for t in study["trials"]]


def test_the_embedded_default_with_the_cli_then_cancel(stack_factory, tuning_body, tmp_path):
    stack = stack_factory("sqlite", **FAST_FAULTS)
    _workers(stack, "w1", "w2")
    key = stack.headers["Authorization"].split()[1]
    body = _twelve_trials(tuning_body)
    argv = ["tune", "--api-key", key, "--dataset", "builtin:digits", "--model", json.dumps(body["model"]),
            "--training", json.dumps(body["training"]), "--space", json.dumps(body["search_space"]),
            "--metric", "accuracy", "--trials", "12", "--parallel", "2", "--pruner", "median",
            "--seed", "5", "--interval", "0.5", "--timeout", "240", "--json",
            "--report", str(tmp_path / "report.html")]  # fmt: skip
    result = CliRunner().invoke(app, argv, obj=Overrides(http=stack.client))
    assert result.exit_code == 0, result.output + stack.logs()
    printed = json.loads(result.stdout[result.stdout.index("{") :])
    study = _study(stack, printed["id"])
    assert printed["status"] == study["status"] == "succeeded"
    _check_consistent(stack, study, 12)
    page = (tmp_path / "report.html").read_text()
    assert "Optimisation history" in page and page.count("data:image/png;base64,") >= 2

    r = stack.client.post("/v1/tuning", json=tuning_body(trials=30, parallel=2), headers=stack.headers)
    sid = r.json()["id"]
    _wait(stack, sid, until=lambda s: s["progress"]["asked"] >= 1)
    r = stack.client.post(f"/v1/tuning/{sid}/cancel", headers=stack.headers)
    assert r.status_code == 202 and r.json()["status"] == "cancelling", r.text
    cancelled = _wait(stack, sid)
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["asked"] < 30
    assert all(t["state"] in ("fail", "pruned", "complete") for t in cancelled["trials"])


def test_a_worker_killed_mid_trial_leaves_the_study_consistent(stack_factory, tuning_body):
    stack = stack_factory("sqlite", **FAST_FAULTS)
    w1, w2 = _workers(stack, "w1", "w2")
    body = tuning_body(
        model=SLOW_MODEL, training={"epochs": 4, "batch_size": 64}, trials=4, parallel=2, pruner="none",
        search_space={"training.learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
    )  # fmt: skip
    r = stack.client.post("/v1/tuning", json=body, headers=stack.headers)
    sid = r.json()["id"]
    study = _wait(stack, sid, until=lambda s: any(t["job_status"] == "running" and t["epoch"] >= 1
                                                  for t in s["trials"]))  # fmt: skip
    job_id = next(t["job_id"] for t in study["trials"] if t["job_status"] == "running" and t["epoch"] >= 1)
    owner = stack.job_row(job_id)["lease_owner"]
    victim = next(w for w in (w1, w2) if owner and f":{w.pid}:" in owner)
    victim.kill()
    stack.start_worker("w3")
    study = _wait(stack, sid, timeout=240)
    assert study["status"] == "succeeded", study
    jobs = _check_consistent(stack, study, 4)
    assert jobs[job_id]["status"] in ("succeeded", "failed") and jobs[job_id]["attempts"] >= 2
