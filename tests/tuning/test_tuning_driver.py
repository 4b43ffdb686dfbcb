"""The tuning driver without a worker: steps ask Optuna for trials, create one job per trial (even when two
steps run at once), tell Optuna how each ended job went, finish the study with Optuna's best trial; the
step lease, cancel, the reconciler's re-send, the pruning hook, and Optuna's tables beside the schema.
The worker is played here: trial jobs are claimed and finished through `core.db.jobs`."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import func, select, update

from core.db import jobs as jobstate
from core.db.models import Job, TuningStudy
from core.tuning import driver, service
from core.tuning.pruning import TrialPruning
from core.tuning.spec import TuningCreate
from core.tuning.storage import OPTUNA_TABLES, load_study, optuna_storage
from core.tuning.triggers import resend_stale
from migrations import alembic_config


def _create(svc, body: dict) -> TuningStudy:
    with svc.sessionmaker() as s:
        return service.create(s, svc.settings, svc.tenant_a, TuningCreate.model_validate(body),
                              idempotency_key=None, body_hash="h")  # fmt: skip


def _step(svc, study_id: str, sent: list | None = None) -> str:
    with svc.sessionmaker() as s:
        return driver.run_step(s, svc.settings, study_id, send=(sent if sent is not None else []).append)


def _row(svc, study_id: str) -> TuningStudy:
    with svc.sessionmaker() as s:
        return s.get(TuningStudy, study_id)


def _jobs(svc) -> list[Job]:
    with svc.sessionmaker() as s:
        return list(s.execute(select(Job).order_by(Job.created_at)).scalars())


def _end(svc, job_id: str, status: str, metrics: dict | None = None, code: str | None = None) -> None:
    """Play the worker: claim the job and end it."""
    with svc.sessionmaker() as s:
        assert jobstate.claim(s, job_id, "test-worker", 60) == jobstate.ClaimOutcome.claimed
        assert jobstate.finish(s, job_id, "test-worker", jobstate.JobStatus(status),
                               final_metrics=metrics, error_code=code)  # fmt: skip


def _active(svc) -> list[Job]:
    return [j for j in _jobs(svc) if j.status in ("queued", "running")]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_steps_at_once_create_one_job_per_trial(make_service, tuning_body, backend):
    svc = make_service(backend)
    row = _create(svc, tuning_body(trials=6, parallel=3))
    outcomes: list[str] = []
    threads = [threading.Thread(target=lambda: outcomes.append(_step(svc, row.id))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert "stepped" in outcomes, outcomes
    jobs = _jobs(svc)
    keys = [j.idempotency_key for j in jobs]
    assert len(jobs) == 3 and len(set(keys)) == 3, keys
    trials = {t["number"]: t for t in _row(svc, row.id).trials}
    assert sorted(trials) == [0, 1, 2] and {t["job_id"] for t in trials.values()} == {j.id for j in jobs}
    for job in jobs:  # every trial job: the study's base job with the trial's params applied
        link = job.spec["metadata"]["tuning"]
        assert link["study"] == row.id
        assert (
            job.spec["training"]["learning_rate"] == trials[link["trial"]]["params"]["training.learning_rate"]
        )
        assert job.spec["training"]["seed"] == row.spec["seed"]  # one split for all trials


def test_a_step_that_outlived_its_lease_finds_the_trials_job(embedded, tuning_body):
    from core.tuning.trials import StepContext, start_trial

    svc = embedded
    row = _create(svc, tuning_body(trials=2, parallel=1))
    _step(svc, row.id)
    [job] = _jobs(svc)
    storage = optuna_storage(svc.settings.database_url)
    study = load_study(storage, row.id, row.spec)
    trial = study.get_trials()[0]
    with svc.sessionmaker() as s:
        ctx = StepContext(s, svc.settings, s.get(TuningStudy, row.id), study, storage, lambda job_id: None)
        assert start_trial(ctx, trial.number, dict(trial.params)) == job.id
    assert len(_jobs(svc)) == 1


def test_ended_jobs_are_told_and_the_best_trial_is_the_best_stored_value(embedded, tuning_body):
    svc = embedded
    row = _create(svc, tuning_body(trials=5, parallel=2))
    values = iter([0.61, 0.93, 0.85, 0.70])
    ends = iter(["succeeded", "succeeded", "failed", "succeeded", "pruned", "succeeded", "succeeded"])
    _step(svc, row.id)
    for _ in range(10):
        for job in _active(svc):
            how = next(ends)
            if how == "succeeded":
                _end(svc, job.id, how, {"accuracy": next(values), "loss": 0.5})
            elif how == "failed":
                _end(svc, job.id, how, code="non_finite_loss")
            else:
                _end(svc, job.id, "cancelled", code="pruned")
        _step(svc, row.id)
        if _row(svc, row.id).status != "running":
            break
    done = _row(svc, row.id)
    assert done.status == "succeeded", done.trials
    states = sorted(t["state"] for t in done.trials)
    assert states == ["complete"] * 3 + ["fail", "pruned"], states
    jobs = {j.id: j for j in _jobs(svc)}
    stored = {t["job_id"]: jobs[t["job_id"]].final_metrics["accuracy"]
              for t in done.trials if jobs[t["job_id"]].status == "succeeded"}  # fmt: skip
    best_job = max(stored, key=stored.get)
    assert done.best["job_id"] == best_job and done.best["value"] == stored[best_job] == 0.93
    failed = next(t for t in done.trials if t["state"] == "fail")
    assert failed["error"]["code"] == "non_finite_loss"
    assert len(jobs) == 5 and done.finished_at is not None
    r = svc.client.get(f"/v1/tuning/{row.id}", headers=svc.auth_a)
    assert r.status_code == 200 and r.json()["best_trial"]["job_id"] == best_job
    assert [t["job_status"] for t in r.json()["trials"]].count("succeeded") == 3
    page = svc.client.get(f"/v1/tuning/{row.id}/report", headers=svc.auth_a)
    assert page.status_code == 200 and "data:image/png;base64," in page.text and best_job in page.text


def test_a_constraint_keeps_infeasible_trials_out_of_the_best(embedded, tuning_body):
    from core.db.models import Webhook, WebhookDelivery

    svc = embedded
    with svc.sessionmaker() as s:
        s.add(
            Webhook(
                tenant_id=svc.tenant_a, url="https://hooks.example.com/x", events=["tuning.*"], secret="s"
            )
        )
        s.commit()
    objective = {
        "metric": "accuracy",
        "direction": "maximize",
        "constraint": {"metric": "macro_f1", "min": 0.8},
    }
    row = _create(svc, tuning_body(trials=2, parallel=2, objective=objective))
    _step(svc, row.id)
    high, low = _active(svc)
    _end(svc, high.id, "succeeded", {"accuracy": 0.95, "macro_f1": 0.5})  # better, but under the floor
    _end(svc, low.id, "succeeded", {"accuracy": 0.90, "macro_f1": 0.85})
    _step(svc, row.id)
    done = _row(svc, row.id)
    assert done.status == "succeeded" and done.best["job_id"] == low.id
    margins = {t["job_id"]: t["constraint"] for t in done.trials}
    assert margins[high.id] == pytest.approx(0.3) and margins[low.id] == pytest.approx(-0.05)
    with svc.sessionmaker() as s:  # the end of the study is a webhook event, with its best trial
        [delivery] = s.execute(select(WebhookDelivery)).scalars().all()
    assert delivery.event_type == "tuning.succeeded"
    assert delivery.payload["data"]["best_trial"]["job_id"] == low.id


def test_cancel_ends_queued_trials_and_the_study(embedded, tuning_body):
    svc = embedded
    row = _create(svc, tuning_body(trials=6, parallel=2))
    _step(svc, row.id)
    with svc.sessionmaker() as s:
        assert service.cancel(s, svc.settings, svc.tenant_a, row.id).status == "cancelling"
    assert {j.status for j in _jobs(svc)} == {"cancelled"}
    _step(svc, row.id)
    done = _row(svc, row.id)
    assert done.status == "cancelled" and [t["state"] for t in done.trials] == ["fail", "fail"]
    assert len(_jobs(svc)) == 2  # no new trial after the cancel
    r = svc.client.post(f"/v1/tuning/{row.id}/cancel", headers=svc.auth_a)
    assert r.status_code == 409 and "cancelled" in r.json()["error"]["message"]


def test_a_step_asked_for_while_another_holds_the_lease_runs_after_it(embedded, tuning_body):
    svc = embedded
    row = _create(svc, tuning_body(trials=2, parallel=1))
    with svc.sessionmaker() as s:
        assert driver._acquire(s, row.id, "holder")
    assert _step(svc, row.id) == "busy"
    assert _row(svc, row.id).step_again is True and _jobs(svc) == []
    with svc.sessionmaker() as s:
        assert driver._release(s, row.id, "holder") == "again"  # the holder must step once more


def test_the_reconciler_resends_the_step_of_stale_active_studies_once(embedded, tuning_body):
    svc = embedded
    row = _create(svc, tuning_body())
    sent: list[str] = []
    with svc.sessionmaker() as s:
        assert resend_stale(s, svc.settings, send=sent.append) == [row.id]
        assert resend_stale(s, svc.settings, send=sent.append) == []  # the token: once per interval
        s.execute(update(TuningStudy).values(status="succeeded"))
        s.commit()
        s.execute(update(TuningStudy).values(dispatched_at=None))
        s.commit()
        assert resend_stale(s, svc.settings, send=sent.append) == []  # ended studies are left alone
    assert sent == [row.id]


def test_the_pruning_hook_reports_epochs_and_stops_a_poor_trial(embedded, tuning_body):
    svc = embedded
    row = _create(svc, tuning_body(trials=8, parallel=1, pruner="median"))  # prunes after 2 completed
    for accuracy in (0.9, 0.8):
        _step(svc, row.id)
        [job] = _active(svc)
        with svc.sessionmaker() as s:
            pruning = TrialPruning(s, job.id)
            assert not pruning.should_prune(1, {"val": {"accuracy": accuracy}})
        _end(svc, job.id, "succeeded", {"accuracy": accuracy})
    _step(svc, row.id)
    [job] = _active(svc)
    with svc.sessionmaker() as s:
        pruning = TrialPruning(s, job.id)
        assert pruning.should_prune(1, {"val": {"accuracy": 0.1}})
        assert (
            pruning.stop_error["error_code"] == "pruned" and "epoch 1" in pruning.stop_error["error_message"]
        )
    _end(svc, job.id, "cancelled", code="pruned")
    _step(svc, row.id)
    pruned = _row(svc, row.id).trials[2]
    assert pruned["state"] == "pruned" and pruned["intermediate"] == {"1": 0.1}
    with svc.sessionmaker() as s:  # a job that is no tuning trial is never pruned
        other = svc.create_job()["id"]
        assert not TrialPruning(s, other).should_prune(1, {"val": {"accuracy": 0.0}})


def test_optunas_tables_sit_beside_the_schema_without_touching_it(service, tuning_body):
    import optuna.storages._rdb.models as optuna_models

    assert set(optuna_models.BaseModel.metadata.tables) == OPTUNA_TABLES
    svc = service
    row = _create(svc, tuning_body())
    _step(svc, row.id)
    with svc.sessionmaker() as s:
        tables = set(s.connection().dialect.get_table_names(s.connection()))
        assert OPTUNA_TABLES <= tables
        assert s.execute(select(func.count()).select_from(TuningStudy)).scalar_one() == 1
    command.check(alembic_config(svc.settings.database_url))  # env.py leaves Optuna's tables out
    command.upgrade(alembic_config(svc.settings.database_url), "head")  # still simtrain's revision


def test_a_trial_asked_by_a_step_that_died_gets_its_job_next_step(embedded, tuning_body):
    from core.tuning.storage import distributions

    svc = embedded
    row = _create(svc, tuning_body(trials=3, parallel=1))
    study = load_study(optuna_storage(svc.settings.database_url), row.id, row.spec)
    orphan = study.ask(distributions(row.spec["search_space"]))  # asked, then the step died
    sent: list[str] = []
    assert _step(svc, row.id, sent) == "stepped"
    [job] = _jobs(svc)
    assert sent == [job.id] and job.spec["metadata"]["tuning"]["trial"] == orphan.number
    assert job.spec["training"]["learning_rate"] == orphan.params["training.learning_rate"]
    assert [t["number"] for t in _row(svc, row.id).trials] == [orphan.number]  # parallel 1: no other
