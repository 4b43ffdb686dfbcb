"""`simtrain jobs delete JOB [--yes] [--json]` against the real API on a real HTTP server: the question
(answered no: nothing deleted; yes: deleted), `--yes --json` for scripts, and the one red line of a 409
(a queued job), a 404 (another tenant's job, a job deleted already).

.venv/bin/python -m pytest -q tests/cli/test_jobs_delete.py
"""

from __future__ import annotations

import json

from cli_testlib import simtrain

from core.job_delete import job_prefix
from tests.specs import SIMLOSS_JOB


def finished(svc, trained_artifacts, finish_with_artifacts) -> str:
    """A succeeded job of tenant A with its artifacts stored; its id."""
    job_id = svc.create_job(SIMLOSS_JOB)["id"]
    finish_with_artifacts(svc, job_id, trained_artifacts)
    assert svc.storage.list(job_prefix(job_id))
    return job_id


def status_code(svc, job_id: str) -> int:
    return svc.client.get(f"/v1/jobs/{job_id}", headers=svc.auth_a).status_code


def test_delete_asks_first_and_deletes_on_yes(live, trained_artifacts, finish_with_artifacts):
    url, svc = live
    job_id = finished(svc, trained_artifacts, finish_with_artifacts)
    files = svc.storage.list(job_prefix(job_id))

    kept = simtrain(["jobs", "delete", job_id], url=url, key=svc.key_a, input="n\n")
    assert kept.exit_code == 1 and "deleted" not in kept.stdout, kept.output  # (the runner echoes "n")
    assert f"Delete job {job_id}" in kept.stderr and "Aborted" in kept.stderr
    assert status_code(svc, job_id) == 200 and svc.storage.list(job_prefix(job_id)) == files

    other = simtrain(["jobs", "delete", job_id, "--yes"], url=url, key=svc.key_b)
    assert other.exit_code == 1, other.output
    assert other.stderr.strip() == f"simtrain: 404 not_found: job {job_id!r} not found"
    assert status_code(svc, job_id) == 200

    done = simtrain(["jobs", "delete", job_id], url=url, key=svc.key_a, input="y\n")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().splitlines()[-1] == f"job {job_id}: deleted"
    assert status_code(svc, job_id) == 404 and svc.storage.list(job_prefix(job_id)) == []

    twice = simtrain(["jobs", "delete", job_id, "--yes"], url=url, key=svc.key_a)
    assert twice.exit_code == 1 and twice.stderr.startswith("simtrain: 404 not_found"), twice.output


def test_delete_yes_json_and_a_queued_job(live, trained_artifacts, finish_with_artifacts):
    url, svc = live
    job_id = finished(svc, trained_artifacts, finish_with_artifacts)
    result = simtrain(["jobs", "delete", job_id, "--yes", "--json"], url=url, key=svc.key_a)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": job_id, "deleted": True}
    assert result.stderr == ""  # no question with --yes
    assert status_code(svc, job_id) == 404

    queued = svc.create_job(SIMLOSS_JOB)["id"]
    refused = simtrain(["jobs", "delete", queued, "-y"], url=url, key=svc.key_a)
    assert refused.exit_code == 1 and refused.stdout == "", refused.output
    [line] = refused.stderr.strip().splitlines()
    assert line == f"simtrain: 409 conflict: job {queued} is queued; cancel it first, then delete it"
    assert status_code(svc, queued) == 200
