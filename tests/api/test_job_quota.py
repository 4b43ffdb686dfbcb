"""A job's stored files count toward the tenant's stored-bytes quota, on the embedded default and on
PostgreSQL: its artifacts (`JobArtifact.size_bytes`) and its kept checkpoints (`Job.checkpoint_bytes`,
which the worker sets after every save and collection to the kept checkpoints' sizes); a dataset upload
that fits beside the datasets is 429 `storage_quota_exceeded` once the job's files are counted and
succeeds after `DELETE /v1/jobs/{id}`; a job submission is 429 while the tenant is at or over its quota;
the other tenant's usage and submissions are unaffected. Jobs are trained here, as a worker would
(`worker.runner.run_job`), so every byte counted was written by the real engine.

.venv/bin/python -m pytest -q tests/api/test_job_quota.py
"""

from __future__ import annotations

from typing import Any

from deletion_testlib import COMPARISON, trained, tuning_body
from sqlalchemy import func, select

from core.checkpoint import job_checkpoints
from core.db import jobs as jobstate
from core.db.models import Job, JobArtifact, JobStatus
from core.storage_quota import stored_bytes_used

TINY_JOB: dict[str, Any] = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "loss": {"kind": "cross_entropy"},
    "model": {"kind": "linear"},
    "training": {"epochs": 4, "seed": 0, "batch_size": 128, "keep_checkpoints": {"best": 1, "last": 1}},
}


def kept_checkpoint_bytes(svc, job_id: str) -> int:
    """What the checkpoints left in storage occupy, from their metadata (what the listing shows)."""
    return sum(int(item["size_bytes"]) for item in job_checkpoints(svc.storage, job_id).listing())


def job_bytes(svc, job_id: str) -> tuple[int, int]:
    """(the job's `checkpoint_bytes`, the sum of its artifact rows' sizes)."""
    with svc.sessionmaker() as s:
        column = s.execute(select(Job.checkpoint_bytes).where(Job.id == job_id)).scalar_one()
        artifacts = s.execute(
            select(func.coalesce(func.sum(JobArtifact.size_bytes), 0)).where(JobArtifact.job_id == job_id)
        ).scalar_one()
    return int(column), int(artifacts)


def used(svc, tenant_id: str) -> int:
    with svc.sessionmaker() as s:
        return stored_bytes_used(s, tenant_id)


def csv_bytes(offset: int) -> bytes:
    rows = ["a,b,label"] + [f"{i * 0.5 + offset},{i % 4},{'xyz'[i % 3]}" for i in range(12)]
    return ("\n".join(rows) + "\n").encode()


def upload(svc, data: bytes, key: str):
    return svc.client.post(
        "/v1/datasets",
        files={"file": ("d.csv", data, "text/csv")},
        headers={"Authorization": f"Bearer {key}"},
    )


def assert_quota_429(r, used_bytes: int, quota: int) -> None:
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert error["code"] == "storage_quota_exceeded", error
    assert error["details"]["used"] == used_bytes and error["details"]["quota"] == quota, error
    assert int(r.headers["retry-after"]) > 0


def test_checkpoint_bytes_is_the_kept_checkpoints_sizes_after_training(embedded):
    svc = embedded
    job_id = trained(svc, TINY_JOB)
    listing = job_checkpoints(svc.storage, job_id).listing()
    assert 1 <= len(listing) < 4, listing  # four saved, the retention collected the rest
    column, artifacts = job_bytes(svc, job_id)
    assert column == kept_checkpoint_bytes(svc, job_id) > 0
    assert artifacts > 0
    assert used(svc, svc.tenant_a) == column + artifacts
    assert used(svc, svc.tenant_b) == 0


def test_a_jobs_files_count_until_it_is_deleted(service):
    svc = service
    key_a, key_b = svc.key_a, svc.key_b
    first = upload(svc, csv_bytes(0), key_a)
    assert first.status_code == 201, first.text
    second_b = upload(svc, csv_bytes(100), key_b)  # what the second upload stores (tenant B's copy)
    assert second_b.status_code == 201, second_b.text
    d1, d2 = first.json()["stored_bytes"], second_b.json()["stored_bytes"]
    job_id = trained(svc, TINY_JOB)
    column, artifacts = job_bytes(svc, job_id)
    assert column == kept_checkpoint_bytes(svc, job_id) > 0 and artifacts > 0
    files = column + artifacts
    assert used(svc, svc.tenant_a) == d1 + files and used(svc, svc.tenant_b) == d2
    assert files > d2  # so the quota below is full once the job's files are counted

    quota = d1 + d2 + 1  # room for both datasets, not for the job's files too
    assert svc.app.state.settings is svc.settings
    svc.settings.max_stored_bytes_per_tenant = quota
    assert_quota_429(upload(svc, csv_bytes(100), key_a), d1 + files, quota)
    submitted = svc.client.post("/v1/jobs", json=TINY_JOB, headers=svc.auth_a)
    assert_quota_429(submitted, d1 + files, quota)
    with svc.sessionmaker() as s:
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 1  # nothing was created
    assert svc.create_job(TINY_JOB, key=key_b)["status"] == "queued"  # tenant B: its own usage
    assert upload(svc, csv_bytes(200), key_b).status_code == 201

    assert svc.client.delete(f"/v1/jobs/{job_id}", headers=svc.auth_b).status_code == 404  # B: not its job
    assert used(svc, svc.tenant_a) == d1 + files
    r = svc.client.delete(f"/v1/jobs/{job_id}", headers=svc.auth_a)
    assert r.status_code == 204, r.text
    assert used(svc, svc.tenant_a) == d1
    again = upload(svc, csv_bytes(100), key_a)
    assert again.status_code == 201 and again.json()["stored_bytes"] == d2, again.text
    assert used(svc, svc.tenant_a) == d1 + d2 == quota - 1
    assert svc.create_job(TINY_JOB)["status"] == "queued"  # under the quota: a job may start again
    svc.settings.max_stored_bytes_per_tenant = d1 + d2  # exactly at the quota: a new job is refused
    assert_quota_429(svc.client.post("/v1/jobs", json=TINY_JOB, headers=svc.auth_a), d1 + d2, d1 + d2)


def test_checkpoint_bytes_is_written_by_the_lease_owner_only_and_a_failed_job_drops_out(embedded):
    svc = embedded
    job_id = svc.create_job(TINY_JOB)["id"]
    with svc.sessionmaker() as s:
        assert not jobstate.record_checkpoint_bytes(s, job_id, "nobody", 500)  # queued: no owner yet
        assert jobstate.claim(s, job_id, "worker-1", 60) == jobstate.ClaimOutcome.claimed
        assert not jobstate.record_checkpoint_bytes(s, job_id, "stale-worker", 700)
        assert used(svc, svc.tenant_a) == 0
        assert jobstate.record_checkpoint_bytes(s, job_id, "worker-1", 900)
        assert used(svc, svc.tenant_a) == 900 and used(svc, svc.tenant_b) == 0
        assert jobstate.finish(s, job_id, "worker-1", JobStatus.failed, error_code="x", error_message="y")
        assert not jobstate.record_checkpoint_bytes(s, job_id, "worker-1", 1000)  # ended: no more writes
        assert s.execute(select(Job.checkpoint_bytes).where(Job.id == job_id)).scalar_one() == 900
    assert used(svc, svc.tenant_a) == 0  # a failed job's checkpoints are deleted when it fails


def test_comparisons_and_tuning_studies_are_refused_while_the_quota_is_full(embedded):
    svc = embedded
    r = upload(svc, csv_bytes(0), svc.key_a)
    assert r.status_code == 201, r.text
    full = r.json()["stored_bytes"]
    svc.settings.max_stored_bytes_per_tenant = full  # tenant A's dataset fills it exactly
    for path, body in (("/v1/comparisons", COMPARISON), ("/v1/tuning", tuning_body())):
        assert_quota_429(svc.client.post(path, json=body, headers=svc.auth_a), full, full)
        assert svc.client.get(path, headers=svc.auth_a).json()["items"] == []  # nothing was stored
        other = svc.client.post(path, json=body, headers=svc.auth_b)  # tenant B: its own usage (none)
        assert other.status_code == 201, other.text
    with svc.sessionmaker() as s:
        assert (
            s.execute(select(func.count()).select_from(Job).where(Job.tenant_id == svc.tenant_a)).scalar_one()
            == 0
        )
