"""Delete one ended job of a tenant: its rows, then its stored files.

    deleted = delete_job(session, storage, tenant_id, job_id)   # NotFound / Conflict, else a DeletedJob

The pieces are shared with the deletion of a comparison or a tuning study with its jobs
(`core.parent_delete`): `check_not_warm_start`, `delete_job_rows`, `delete_files`, `job_prefix`.

Only a job in a terminal state (`core.status.JOB_TERMINAL`) may go; anything else is a Conflict that asks
to cancel it first. A job another object still needs is a Conflict naming that object:

- a child of a comparison (`Job.comparison_id`) or a trial of a tuning study (`metadata.tuning.study`,
  `core.tuning.triggers.study_of`): the parent's report reads it;
- the warm start (`model.init.from_job`, `core.weights_store.check_init_source`) of a queued, running or
  paused job of the tenant, or of a running tuning study's trials (its base spec or a `model.init.from_job`
  search space): those would start from files that are gone.

The job's row is deleted and committed first (its events, epochs and artifact rows go with it through
`ON DELETE CASCADE`), then every stored object under `jobs/{id}/` (checkpoints, checkpoint metadata,
artifacts). A failure deleting files is logged and leaves orphan files only, never a row pointing at
missing ones. Another tenant's job, or an unknown id, is NotFound.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db import jobs as jobstate
from core.db.jobs import ACTIVE
from core.db.models import Job, TuningStudy
from core.errors import Conflict, NotFound
from core.status import JOB_TERMINAL
from core.storage import Storage
from core.tuning.status import TUNING_ACTIVE
from core.tuning.triggers import study_of

__all__ = [
    "DeletedJob",
    "check_deletable",
    "check_not_warm_start",
    "delete_files",
    "delete_job",
    "delete_job_rows",
    "job_prefix",
]

log = logging.getLogger("simtrain.jobs")

MAX_NAMED = 5  # the warm-started jobs a Conflict names


@dataclass(frozen=True)
class DeletedJob:
    job_id: str
    files_deleted: int | None  # None: deleting the files failed (logged; they are orphans now)


def job_prefix(job_id: str) -> str:
    """The storage prefix everything of a job is written under (checkpoints, their metadata, artifacts)."""
    return f"jobs/{job_id}/"


def delete_job(session: Session, storage: Storage, tenant_id: str, job_id: str) -> DeletedJob:
    """Delete the tenant's ended job (see the module docstring). Commits."""
    job = jobstate.get_for_tenant(session, tenant_id, job_id)
    check_deletable(session, job)
    the_id = job.id  # read before the commit: the deleted row cannot be loaded again
    if delete_job_rows(session, tenant_id, [the_id]) != 1:  # deleted by a request at the same moment
        session.rollback()
        raise NotFound(f"job {the_id!r} not found")
    session.expunge(job)
    session.commit()
    return DeletedJob(the_id, delete_files(storage, the_id))


def delete_job_rows(session: Session, tenant_id: str, job_ids: Collection[str]) -> int:
    """Delete the tenant's ended jobs among `job_ids` (their events, epochs and artifact rows go with
    them: `ON DELETE CASCADE`); how many rows went. Neither commits nor checks anything else."""
    if not job_ids:
        return 0
    res = session.execute(
        delete(Job)
        .where(
            Job.id.in_(list(job_ids)),
            Job.tenant_id == tenant_id,
            Job.status.in_([s.value for s in JOB_TERMINAL]),
        )
        .execution_options(synchronize_session=False)
    )
    return res.rowcount


def check_deletable(session: Session, job: Job) -> None:
    """Conflict when the job has not ended or another object still needs it."""
    if job.status not in JOB_TERMINAL:
        raise Conflict(
            f"job {job.id} is {job.status}; cancel it first, then delete it", details={"status": job.status}
        )
    if job.comparison_id:
        raise Conflict(
            f"job {job.id} belongs to comparison {job.comparison_id}, whose report needs it",
            details={"comparison_id": job.comparison_id},
        )
    study = study_of(job.spec)
    if study is not None:
        raise Conflict(
            f"job {job.id} is a trial of tuning study {study}, whose report needs it",
            details={"tuning_study_id": study},
        )
    check_not_warm_start(session, job.tenant_id, [job.id])


def check_not_warm_start(session: Session, tenant_id: str, job_ids: Collection[str]) -> None:
    """Conflict naming the first queued, running or paused job of the tenant, or the first running tuning
    study, that warm-starts (`model.init.from_job`) from one of `job_ids`."""
    ids = set(job_ids)
    if not ids:
        return
    from_job = Job.spec["model"]["init"]["from_job"].as_string()
    users = session.execute(
        select(Job.id, from_job)
        .where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE), from_job.in_(sorted(ids)))
        .order_by(Job.created_at, Job.id)
        .limit(MAX_NAMED)
    ).all()
    if users:
        raise Conflict(
            f"job {users[0][0]} warm-starts from job {users[0][1]} (model.init.from_job); cancel it first",
            details={"jobs": [user for user, _ in users]},
        )
    studies = session.execute(
        select(TuningStudy.id, TuningStudy.spec).where(
            TuningStudy.tenant_id == tenant_id, TuningStudy.status.in_(TUNING_ACTIVE)
        )
    ).all()
    for study_id, spec in studies:
        sources = sorted(_study_warm_starts(spec) & ids)
        if sources:
            raise Conflict(
                f"tuning study {study_id} warm-starts its trials from job {sources[0]}; cancel it first",
                details={"tuning_study_id": study_id},
            )


def _study_warm_starts(spec: dict[str, Any] | None) -> set[str]:
    """The job ids a study's trials may warm-start from: its base's and its search space's."""
    spec = spec or {}
    init = (((spec.get("base") or {}).get("model") or {}).get("init")) or {}
    found = {init["from_job"]} if isinstance(init, dict) and init.get("from_job") else set()
    param = (spec.get("search_space") or {}).get("model.init.from_job") or {}
    found |= {c for c in (param.get("choices") or []) if isinstance(c, str)}
    return found


def delete_files(storage: Storage, job_id: str) -> int | None:
    """Delete every stored object under the job's prefix; how many, or None when that failed (logged:
    the job's row is gone already, so they are orphan files)."""
    prefix = job_prefix(job_id)
    try:
        return storage.delete_prefix(prefix)
    except Exception as exc:  # noqa: BLE001 - the row is gone already: orphan files, logged
        log.warning("job %s deleted, but its files under %s were not: %s", job_id, prefix, exc)
        return None
