"""`DELETE /v1/comparisons/{id}` and `DELETE /v1/tuning/{id}` on the embedded default and on PostgreSQL:
an ended comparison goes with its child jobs, an ended study with its trial jobs and its Optuna study
(rows, and every stored file under each job's `jobs/{id}/`); one that has not ended, or whose job is the
warm-start source of a queued job or of a running study, is 409 naming why, with nothing deleted;
another tenant's is 404 (nothing deleted) and so is one deleted already.

.venv/bin/python -m pytest -q tests/api/test_parent_delete.py
"""

from __future__ import annotations

from typing import Any

import pytest
from deletion_testlib import COMPARISON, assert_conflict, tuning_body
from sqlalchemy import func, select

from core.db import jobs as jobstate
from core.db.models import Comparison, Job, JobEvent, TuningStudy
from core.job_delete import job_prefix

# ------------------------------------------------------------------------------------------- helpers


def counts(svc, parent: Any, parent_id: str, job_ids: list[str]) -> dict[str, int]:
    """Rows of the parent, of its jobs and of their events."""
    with svc.sessionmaker() as s:
        count = lambda model, where: s.execute(
            select(func.count()).select_from(model).where(where)
        ).scalar_one()
        return {
            "parent": count(parent, parent.id == parent_id),
            "jobs": count(Job, Job.id.in_(job_ids)),
            "events": count(JobEvent, JobEvent.job_id.in_(job_ids)),
        }


def files(svc, job_ids: list[str]) -> dict[str, list[str]]:
    return {j: svc.storage.list(job_prefix(j)) for j in job_ids}


def with_files(svc, job_ids: list[str]) -> dict[str, list[str]]:
    """A stored file under each job's prefix (as its artifacts are); what each prefix holds."""
    for j in job_ids:
        svc.storage.put_bytes(f"{job_prefix(j)}artifacts/proof.bin", b"stored bytes")
    found = files(svc, job_ids)
    assert all(found.values()), found
    return found


def assert_not_found(r) -> None:
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text


def create_comparison(svc, *, cancel: bool) -> tuple[str, list[str]]:
    """A comparison of tenant A (cancelled right away when `cancel`): its id and its child job ids."""
    r = svc.client.post("/v1/comparisons", json=COMPARISON, headers=svc.auth_a)
    assert r.status_code == 201, r.text
    comp = r.json()
    if cancel:
        r = svc.client.post(f"/v1/comparisons/{comp['id']}/cancel", headers=svc.auth_a)
        assert r.status_code == 202 and r.json()["status"] == "cancelled", r.text
    children = [c["job_id"] for c in comp["children"]]
    assert len(children) == 2, children
    return comp["id"], children


def step(svc, study_id: str) -> None:
    """One driver step of the study, as the worker's `simtrain.tuning_step` runs it (no task sent)."""
    from core.tuning import driver

    with svc.sessionmaker() as s:
        driver.run_step(s, svc.settings, study_id, send=lambda _id: None)


def create_study(svc, body: dict[str, Any] | None = None) -> str:
    """A study of tenant A whose first step has run (its Optuna study and first trial job exist)."""
    r = svc.client.post("/v1/tuning", json=body or tuning_body(), headers=svc.auth_a)
    assert r.status_code == 201, r.text
    step(svc, r.json()["id"])
    return r.json()["id"]


def trial_jobs(svc, study_id: str) -> list[str]:
    r = svc.client.get(f"/v1/tuning/{study_id}", headers=svc.auth_a)
    assert r.status_code == 200, r.text
    return [t["job_id"] for t in r.json()["trials"] if t["job_id"]]


def optuna_names(svc) -> set[str]:
    import optuna

    from core.tuning.storage import optuna_storage

    storage = optuna_storage(svc.settings.database_url)
    return {s.study_name for s in optuna.get_all_study_summaries(storage=storage)}


def train(svc, job_id: str) -> None:
    from worker.runner import RunOutcome, run_job

    assert run_job(job_id, settings=svc.settings, resend=lambda _id: None) == RunOutcome.succeeded


def warm_job(svc, source: str) -> str:
    """A queued job of tenant A that warm-starts from `source`."""
    body = {k: COMPARISON[k] for k in ("dataset", "classes", "training")}
    body |= {"loss": {"kind": "cross_entropy"}, "model": {"kind": "linear", "init": {"from_job": source}}}
    return svc.create_job(body)["id"]


# --------------------------------------------------------------------------------------- comparisons


def test_an_ended_comparison_is_deleted_with_its_children_and_their_files(service):
    svc = service
    comp, children = create_comparison(svc, cancel=True)
    other, other_children = create_comparison(svc, cancel=False)  # untouched
    stored = with_files(svc, children)
    before = counts(svc, Comparison, comp, children)
    assert before == {"parent": 1, "jobs": 2, "events": before["events"]} and before["events"] > 0, before

    r = svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_b)  # the other tenant
    assert_not_found(r)
    assert counts(svc, Comparison, comp, children) == before and files(svc, children) == stored

    r = svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_a)
    assert r.status_code == 204 and r.content == b"", r.text
    assert_not_found(svc.client.get(f"/v1/comparisons/{comp}", headers=svc.auth_a))
    for child in children:
        assert_not_found(svc.client.get(f"/v1/jobs/{child}", headers=svc.auth_a))
    assert counts(svc, Comparison, comp, children) == {"parent": 0, "jobs": 0, "events": 0}
    assert files(svc, children) == {c: [] for c in children}

    assert svc.client.get(f"/v1/comparisons/{other}", headers=svc.auth_a).status_code == 200
    assert counts(svc, Comparison, other, other_children)["jobs"] == 2
    listed = svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"]
    assert [c["id"] for c in listed] == [other]
    assert_not_found(svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_a))  # twice


def test_a_comparison_that_has_not_ended_is_409_and_nothing_is_deleted(service):
    svc = service
    comp, children = create_comparison(svc, cancel=False)
    stored = with_files(svc, children)
    before = counts(svc, Comparison, comp, children)
    error = assert_conflict(svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_a), "running",
                            "cancel it first")  # fmt: skip
    assert error["details"] == {"status": "running"}
    assert_not_found(svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_b))  # 404 before 409
    assert counts(svc, Comparison, comp, children) == before and files(svc, children) == stored

    with svc.sessionmaker() as s:  # one child runs: cancelling leaves the comparison `cancelling`
        assert jobstate.claim(s, children[0], "test-worker", 60) == jobstate.ClaimOutcome.claimed
    r = svc.client.post(f"/v1/comparisons/{comp}/cancel", headers=svc.auth_a)
    assert r.status_code == 202 and r.json()["status"] == "cancelling", r.text
    before = counts(svc, Comparison, comp, children)
    error = assert_conflict(svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_a), "cancelling")
    assert error["details"] == {"status": "cancelling"}
    assert counts(svc, Comparison, comp, children) == before and files(svc, children) == stored


def test_a_child_that_a_queued_job_warm_starts_from_is_409_naming_that_job(embedded):
    svc = embedded
    comp, children = create_comparison(svc, cancel=False)
    for child in children:
        train(svc, child)
    r = svc.client.get(f"/v1/comparisons/{comp}", headers=svc.auth_a)
    assert r.json()["status"] == "succeeded", r.text
    stored = files(svc, children)
    assert all(any("/checkpoints/" in k for k in keys) for keys in stored.values()), stored
    warm = warm_job(svc, children[1])

    error = assert_conflict(svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_a), warm,
                            children[1], "model.init.from_job")  # fmt: skip
    assert error["details"] == {"jobs": [warm]}
    assert counts(svc, Comparison, comp, children)["jobs"] == 2 and files(svc, children) == stored

    assert svc.client.post(f"/v1/jobs/{warm}/cancel", headers=svc.auth_a).status_code == 202
    assert svc.client.delete(f"/v1/comparisons/{comp}", headers=svc.auth_a).status_code == 204
    assert files(svc, children) == {c: [] for c in children}
    assert svc.client.get(f"/v1/jobs/{warm}", headers=svc.auth_a).json()["status"] == "cancelled"


# ---------------------------------------------------------------------------------------- tuning


def test_an_ended_study_is_deleted_with_its_trials_and_its_optuna_study(service):
    svc = service
    study = create_study(svc)
    other = create_study(svc)  # untouched
    trials = trial_jobs(svc, study)
    assert len(trials) == 1 and {study, other} <= optuna_names(svc)
    assert svc.client.post(f"/v1/tuning/{study}/cancel", headers=svc.auth_a).status_code == 202
    error = assert_conflict(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a), "cancelling")
    assert error["details"] == {"status": "cancelling"}
    step(svc, study)  # the driver tells Optuna about the cancelled trial: the study ends
    assert svc.client.get(f"/v1/tuning/{study}", headers=svc.auth_a).json()["status"] == "cancelled"
    stored = with_files(svc, trials)
    before = counts(svc, TuningStudy, study, trials)

    assert_not_found(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_b))  # the other tenant
    assert counts(svc, TuningStudy, study, trials) == before and files(svc, trials) == stored
    assert study in optuna_names(svc)

    r = svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a)
    assert r.status_code == 204 and r.content == b"", r.text
    assert_not_found(svc.client.get(f"/v1/tuning/{study}", headers=svc.auth_a))
    assert_not_found(svc.client.get(f"/v1/jobs/{trials[0]}", headers=svc.auth_a))
    assert counts(svc, TuningStudy, study, trials) == {"parent": 0, "jobs": 0, "events": 0}
    assert files(svc, trials) == {trials[0]: []}
    names = optuna_names(svc)
    assert study not in names and other in names
    assert svc.client.get(f"/v1/tuning/{other}", headers=svc.auth_a).status_code == 200
    assert_not_found(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a))  # twice


def test_a_running_study_is_409_and_one_optuna_never_stored_is_deleted(service):
    import optuna

    from core.tuning.storage import optuna_storage

    svc = service
    study = create_study(svc)
    trials = trial_jobs(svc, study)
    before = counts(svc, TuningStudy, study, trials)
    error = assert_conflict(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a), "running",
                            "cancel it first")  # fmt: skip
    assert error["details"] == {"status": "running"}
    assert_not_found(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_b))
    assert counts(svc, TuningStudy, study, trials) == before and study in optuna_names(svc)

    assert svc.client.post(f"/v1/tuning/{study}/cancel", headers=svc.auth_a).status_code == 202
    step(svc, study)
    optuna.delete_study(study_name=study, storage=optuna_storage(svc.settings.database_url))
    assert svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a).status_code == 204
    assert counts(svc, TuningStudy, study, trials) == {"parent": 0, "jobs": 0, "events": 0}


def test_a_trial_that_a_queued_job_or_a_running_study_warm_starts_from_is_409(embedded):
    svc = embedded
    study = create_study(svc)
    [trial] = trial_jobs(svc, study)
    train(svc, trial)
    step(svc, study)  # its only trial told: the study ends
    assert svc.client.get(f"/v1/tuning/{study}", headers=svc.auth_a).json()["status"] == "succeeded"
    stored = files(svc, [trial])
    assert stored[trial], stored

    warm = warm_job(svc, trial)
    error = assert_conflict(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a), warm,
                            "model.init.from_job")  # fmt: skip
    assert error["details"] == {"jobs": [warm]}
    assert svc.client.post(f"/v1/jobs/{warm}/cancel", headers=svc.auth_a).status_code == 202

    r = svc.client.post("/v1/tuning", headers=svc.auth_a,
                        json=tuning_body(model={"kind": "linear", "init": {"from_job": trial}}))  # fmt: skip
    assert r.status_code == 201, r.text
    warm_study = r.json()["id"]
    error = assert_conflict(svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a), warm_study)
    assert error["details"] == {"tuning_study_id": warm_study}
    assert counts(svc, TuningStudy, study, [trial])["jobs"] == 1 and files(svc, [trial]) == stored

    assert svc.client.post(f"/v1/tuning/{warm_study}/cancel", headers=svc.auth_a).status_code == 202
    step(svc, warm_study)  # no trial yet: it ends cancelled
    assert svc.client.delete(f"/v1/tuning/{study}", headers=svc.auth_a).status_code == 204
    assert files(svc, [trial]) == {trial: []} and study not in optuna_names(svc)


@pytest.mark.parametrize("path", ["/v1/comparisons/nope", "/v1/tuning/nope"])
def test_an_unknown_parent_is_404(embedded, path):
    assert_not_found(embedded.client.delete(path, headers=embedded.auth_a))
