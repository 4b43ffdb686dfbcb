"""`DELETE /v1/jobs/{id}` on the embedded default and on PostgreSQL: an ended job goes with its events,
epochs, artifact rows and every stored file under `jobs/{id}/`; a job that has not ended, a comparison's
child, a tuning trial and the warm-start source of a queued job or of a running study are 409 naming
why, with nothing deleted; another tenant's job and a deleted one are 404.

.venv/bin/python -m pytest -q tests/api/test_job_delete.py
"""

from __future__ import annotations

from typing import Any

from deletion_testlib import COMPARISON, TINY_JOB, assert_conflict, trained, tuning_body
from sqlalchemy import func, select

from core.db import jobs as jobstate
from core.db.models import Job, JobArtifact, JobEpoch, JobEvent
from core.job_delete import job_prefix


def rows(svc, job_id: str) -> dict[str, int]:
    """How many rows of each table belong to the job."""
    with svc.sessionmaker() as s:
        return {
            model.__tablename__: s.execute(
                select(func.count()).select_from(model).where(column == job_id)
            ).scalar_one()
            for model, column in (
                (Job, Job.id),
                (JobEvent, JobEvent.job_id),
                (JobEpoch, JobEpoch.job_id),
                (JobArtifact, JobArtifact.job_id),
            )
        }


def delete(svc, job_id: str, auth: dict | None = None):
    return svc.client.delete(f"/v1/jobs/{job_id}", headers=auth or svc.auth_a)


def test_an_ended_job_is_deleted_with_its_rows_and_files(service):
    svc = service
    job_id = trained(svc)
    other = svc.create_job()["id"]  # another job of the tenant: untouched
    before = rows(svc, job_id)
    assert before["jobs"] == 1 and min(before.values()) > 0, before
    files = svc.storage.list(job_prefix(job_id))
    assert any("/checkpoints/" in k for k in files) and any("/artifacts/" in k for k in files), files

    r = delete(svc, job_id, svc.auth_b)  # the other tenant: 404, nothing deleted
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text
    assert rows(svc, job_id) == before and svc.storage.list(job_prefix(job_id)) == files

    r = delete(svc, job_id)
    assert r.status_code == 204 and r.content == b"", r.text
    for path in ("", "/events", "/metrics", "/artifacts", "/checkpoints"):
        got = svc.client.get(f"/v1/jobs/{job_id}{path}", headers=svc.auth_a)
        assert got.status_code == 404, (path, got.text)
    assert rows(svc, job_id) == {"jobs": 0, "job_events": 0, "job_epochs": 0, "job_artifacts": 0}
    assert svc.storage.list(job_prefix(job_id)) == []
    listed = svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"]
    assert [j["id"] for j in listed] == [other]
    assert rows(svc, other)["jobs"] == 1

    again = delete(svc, job_id)  # deleting twice
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found", again.text


def test_a_job_that_has_not_ended_is_409_until_it_is_cancelled(service):
    svc = service
    queued = svc.create_job()["id"]
    paused = svc.create_job()["id"]
    assert svc.client.post(f"/v1/jobs/{paused}/pause", headers=svc.auth_a).json()["status"] == "paused"
    running = svc.create_job()["id"]
    with svc.sessionmaker() as s:
        assert jobstate.claim(s, running, "test-worker", 60) == jobstate.ClaimOutcome.claimed
    for job_id, state in ((queued, "queued"), (paused, "paused"), (running, "running")):
        before = rows(svc, job_id)
        error = assert_conflict(delete(svc, job_id), state, "cancel it first")
        assert error["details"] == {"status": state}
        assert rows(svc, job_id) == before
        assert delete(svc, job_id, svc.auth_b).status_code == 404  # the other tenant: 404 before 409
    assert svc.client.post(f"/v1/jobs/{queued}/cancel", headers=svc.auth_a).json()["status"] == "cancelled"
    assert delete(svc, queued).status_code == 204  # cancelled: ended, deletable
    assert rows(svc, queued)["jobs"] == 0 and rows(svc, paused)["jobs"] == 1


def test_the_source_of_a_queued_warm_start_is_409_naming_that_job(service):
    svc = service
    source = trained(svc)
    files = svc.storage.list(job_prefix(source))
    warm = svc.create_job({**TINY_JOB, "model": {"kind": "linear", "init": {"from_job": source}}})["id"]
    error = assert_conflict(delete(svc, source), warm, "model.init.from_job")
    assert error["details"] == {"jobs": [warm]}
    assert rows(svc, source)["jobs"] == 1 and svc.storage.list(job_prefix(source)) == files
    assert svc.client.post(f"/v1/jobs/{warm}/cancel", headers=svc.auth_a).status_code == 202
    assert delete(svc, source).status_code == 204  # no job that has not ended needs it any more
    assert svc.storage.list(job_prefix(source)) == []


def test_a_comparison_child_is_409_naming_the_comparison(embedded):
    svc = embedded
    r = svc.client.post("/v1/comparisons", json=COMPARISON, headers=svc.auth_a)
    assert r.status_code == 201, r.text
    comparison = r.json()
    r = svc.client.post(f"/v1/comparisons/{comparison['id']}/cancel", headers=svc.auth_a)
    assert r.status_code == 202, r.text
    children = [c["job_id"] for c in comparison["children"]]
    assert len(children) >= 2
    for child in children:
        assert svc.client.get(f"/v1/jobs/{child}", headers=svc.auth_a).json()["status"] == "cancelled"
        error = assert_conflict(delete(svc, child), comparison["id"], "comparison")
        assert error["details"] == {"comparison_id": comparison["id"]}
        assert rows(svc, child)["jobs"] == 1


def _create_study(svc, body: dict[str, Any]) -> str:
    from core.tuning import service as tuning
    from core.tuning.spec import TuningCreate

    with svc.sessionmaker() as s:
        row = tuning.create(s, svc.settings, svc.tenant_a, TuningCreate.model_validate(body),
                            idempotency_key=None, body_hash="h", storage=svc.storage)  # fmt: skip
        return row.id


def test_a_tuning_trial_and_a_running_studys_warm_start_are_409(embedded):
    from core.tuning import driver
    from core.tuning import service as tuning

    svc = embedded
    study = _create_study(svc, tuning_body(trials=2))
    with svc.sessionmaker() as s:
        driver.run_step(s, svc.settings, study, send=lambda _id: None)  # asks and creates the first trial
        tuning.cancel(s, svc.settings, svc.tenant_a, study)  # the trial job ends cancelled
    with svc.sessionmaker() as s:
        trials = s.execute(select(Job.id, Job.status).where(Job.tenant_id == svc.tenant_a)).all()
    assert len(trials) == 1 and trials[0].status == "cancelled", trials
    error = assert_conflict(delete(svc, trials[0].id), study, "tuning study")
    assert error["details"] == {"tuning_study_id": study}
    assert rows(svc, trials[0].id)["jobs"] == 1

    source = trained(svc)
    warm = _create_study(svc, tuning_body(trials=2, model={"kind": "linear", "init": {"from_job": source}}))
    error = assert_conflict(delete(svc, source), warm, "warm-starts")
    assert error["details"] == {"tuning_study_id": warm}
    with svc.sessionmaker() as s:
        tuning.cancel(s, svc.settings, svc.tenant_a, warm)
        driver.run_step(s, svc.settings, warm, send=lambda _id: None)  # no trial: the study ends
    assert delete(svc, source).status_code == 204
