"""Delete an ended comparison or tuning study of a tenant with its jobs: their rows, then their files.

    deleted = delete_comparison(session, storage, tenant_id, comparison_id)   # NotFound / Conflict
    deleted = delete_study(session, storage, tenant_id, study_id, database_url=settings.database_url)

Only a parent that has ended may go: a comparison whose status (derived from its children's,
`core.compare.service.derived_status`) is terminal, a study in `core.tuning.status.TUNING_TERMINAL`;
anything else is a Conflict that asks to cancel it first (or, while it is `cancelling`, to wait until its
jobs have ended). Every one of its jobs must have ended too. A job of the tenant that has not ended, or a
running tuning study, that warm-starts (`model.init.from_job`) from one of its jobs is a Conflict naming
it (`core.job_delete.check_not_warm_start`).

The jobs of a comparison are those with its `Job.comparison_id`; those of a study, its trials (the jobs
its trials table names, and every job whose `metadata.tuning.study` is the study, `core.tuning.triggers
.study_of`). The jobs' rows (their events, epochs and artifact rows through `ON DELETE CASCADE`) and the
parent's row are deleted in one transaction and committed; then every stored object under each job's
`jobs/{id}/` and, for a study, its Optuna study (`optuna.delete_study` on the same database's RDB
storage; one Optuna never created is fine). A comparison's report lives in its row and a study's report
is computed from Optuna, so neither has stored files of its own. A failure after the commit (files,
Optuna) is logged and leaves orphans only, never a row pointing at missing data. Another tenant's parent,
or an unknown id, is NotFound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from core.compare import service as compare
from core.db.models import Comparison, Job, TuningStudy
from core.errors import Conflict, NotFound
from core.job_delete import check_not_warm_start, delete_files, delete_job_rows
from core.status import COMPARISON_TERMINAL, JOB_TERMINAL
from core.storage import Storage
from core.tuning import service as tuning
from core.tuning.status import TUNING_TERMINAL

__all__ = ["DeletedParent", "delete_comparison", "delete_study", "study_jobs"]

log = logging.getLogger("simtrain.jobs")


@dataclass(frozen=True)
class DeletedParent:
    id: str
    job_ids: tuple[str, ...]
    files_deleted: int | None  # None: deleting some files failed (logged; they are orphans now)


def delete_comparison(
    session: Session, storage: Storage, tenant_id: str, comparison_id: str
) -> DeletedParent:
    """Delete the tenant's ended comparison with its child jobs (see the module docstring). Commits."""
    comp = compare.get_for_tenant(session, tenant_id, comparison_id)
    kids = compare.children(session, comp.id)
    state = compare.derived_status(comp.status, compare.progress((j.status, j.epoch, j.epochs) for j in kids))
    _check_ended("comparison", comp.id, state, {s.value for s in COMPARISON_TERMINAL})
    the_id, ids = comp.id, _checked_jobs(session, tenant_id, "comparison", comp.id, kids)
    parent = delete(Comparison).where(Comparison.id == the_id, Comparison.tenant_id == tenant_id)
    _delete_rows(session, tenant_id, ids, parent, f"comparison {the_id!r} not found")
    return DeletedParent(the_id, ids, _delete_all_files(storage, ids))


def delete_study(
    session: Session, storage: Storage, tenant_id: str, study_id: str, *, database_url: str
) -> DeletedParent:
    """Delete the tenant's ended tuning study with its trial jobs and its Optuna study on `database_url`
    (see the module docstring). Commits."""
    row = tuning.get_for_tenant(session, tenant_id, study_id)
    _check_ended("tuning study", row.id, row.status, {s.value for s in TUNING_TERMINAL})
    the_id, ids = row.id, _checked_jobs(session, tenant_id, "tuning study", row.id, study_jobs(session, row))
    parent = delete(TuningStudy).where(
        TuningStudy.id == the_id,
        TuningStudy.tenant_id == tenant_id,
        TuningStudy.status.in_([s.value for s in TUNING_TERMINAL]),
    )
    _delete_rows(session, tenant_id, ids, parent, f"tuning study {the_id!r} not found")
    _delete_optuna_study(database_url, the_id)
    return DeletedParent(the_id, ids, _delete_all_files(storage, ids))


def study_jobs(session: Session, row: TuningStudy) -> list[Job]:
    """The study's trial jobs: those its trials table names and those linked to it by their metadata."""
    named = [t["job_id"] for t in row.trials or [] if t.get("job_id")]
    linked = Job.spec["metadata"]["tuning"]["study"].as_string() == row.id
    query = (
        select(Job)
        .where(Job.tenant_id == row.tenant_id, or_(Job.id.in_(named), linked))
        .order_by(Job.created_at, Job.id)
    )
    return list(session.execute(query).scalars().all())


def _check_ended(kind: str, the_id: str, status: str, terminal: set[str]) -> None:
    if status in terminal:
        return
    how = "cancel it first, then delete it"
    if status == "cancelling":
        how = "its jobs are still ending: delete it once they have"
    raise Conflict(f"{kind} {the_id} is {status}; {how}", details={"status": status})


def _checked_jobs(
    session: Session, tenant_id: str, kind: str, the_id: str, jobs: list[Job]
) -> tuple[str, ...]:
    """The ids of the parent's jobs, once all have ended and nothing else warm-starts from them."""
    for job in jobs:
        if job.status not in JOB_TERMINAL:
            raise Conflict(
                f"job {job.id} of {kind} {the_id} is {job.status}; cancel it first, then delete it",
                details={"job_id": job.id, "status": job.status},
            )
    ids = tuple(j.id for j in jobs)
    check_not_warm_start(session, tenant_id, ids)
    return ids


def _delete_rows(session: Session, tenant_id: str, ids: tuple[str, ...], parent, missing: str) -> None:
    """The jobs' rows and the parent's (the `parent` DELETE) in one transaction, committed; NotFound (rolled
    back) when a request at the same moment deleted them first."""
    gone = delete_job_rows(session, tenant_id, ids)
    res = session.execute(parent.execution_options(synchronize_session=False))
    if gone != len(ids) or res.rowcount != 1:
        session.rollback()
        raise NotFound(missing)
    session.expunge_all()  # the deleted rows cannot be loaded again
    session.commit()


def _delete_all_files(storage: Storage, ids: tuple[str, ...]) -> int | None:
    counts = [delete_files(storage, job_id) for job_id in ids]
    return None if None in counts else sum(c or 0 for c in counts)


def _delete_optuna_study(database_url: str, name: str) -> bool | None:
    """Delete the Optuna study `name`: True, False when Optuna never created it, None when that failed
    (logged: an orphan Optuna study, its row is gone already)."""
    import optuna

    from core.tuning.storage import optuna_storage

    try:
        optuna.delete_study(study_name=name, storage=optuna_storage(database_url))
    except KeyError:
        return False
    except Exception as exc:  # noqa: BLE001 - the row is gone already: an orphan Optuna study, logged
        log.warning("tuning study %s deleted, but its Optuna study was not: %s", name, exc)
        return None
    return True
