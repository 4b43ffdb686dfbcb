"""Tuning studies as a service: create one (validated against its dataset, nothing stored on an error),
read its status, trials table and best trial for a tenant, cancel it. The REST routes parse, call these
and answer; the study's trials are asked, started and told by the driver (`core.tuning.driver`) in the
`simtrain.tuning_step` task, which the caller sends once `create` has committed (`send_first_step`).

    row = create(session, settings, tenant, body, idempotency_key=key, body_hash=h, storage=st)
    send_first_step(session, settings, row)
    detail(row, trial_job_rows(session, row))     # the public fields: status, progress, best_trial, trials
    row = cancel(session, settings, tenant, study_id)
    rows = session.execute(tenant_query(tenant, status)).scalars().all(); [summary(r) for r in rows]

With `tracking` every trial job carries the study's MLflow experiment (`TuningCreate.trial_tracking`,
in the stored `base`); the worker nests the trials' runs under the study's parent run (`core.tracking`).

Every trial job carries the request's `priority` and `resources` (in the stored `base`). A warm start
(`model.init`) is checked as a job's is at submission (`core.weights_store.check_init_source`): the base's
(`model.init.from_job`, ...) and each one a search path under `model.init` can make (`search_space.<path>`).

Another tenant's study is NotFound. `parallel` must fit the tenant's active-job limit: more than the
limit is a 422 (`parallel`), more than what is free now a 429 that says how many fit.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from core.dataset_store import dataset_info
from core.db import jobs as jobstate
from core.db.models import Job, TuningStudy
from core.db.types import now as utcnow
from core.errors import Conflict, NotFound, RateLimited, SpecError
from core.settings import Settings
from core.status import JOB_TERMINAL
from core.storage_quota import check_not_full
from core.tuning.paths import get_path, with_values
from core.tuning.spec import TuningCreate
from core.tuning.status import TUNING_ACTIVE, TuningStatus
from core.tuning.table import progress
from core.tuning.validate import check_request
from core.weights_store import check_init_source

__all__ = [
    "cancel",
    "create",
    "detail",
    "find_by_key",
    "get_for_tenant",
    "send_first_step",
    "send_step",
    "stored_hash",
    "summary",
    "tenant_query",
    "trial_job_rows",
]

log = logging.getLogger("simtrain.tuning")


# --------------------------------------------------------------------------------------------- reads


def get_for_tenant(session: Session, tenant_id: str, study_id: str) -> TuningStudy:
    """The tenant's study, or NotFound (also for another tenant's)."""
    row = session.execute(
        select(TuningStudy).where(TuningStudy.id == study_id[:64], TuningStudy.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"tuning study {study_id[:64]!r} not found")
    return row


def find_by_key(session: Session, tenant_id: str, key: str) -> TuningStudy | None:
    """The tenant's study created with this Idempotency-Key, if any."""
    return session.execute(
        select(TuningStudy).where(TuningStudy.tenant_id == tenant_id, TuningStudy.idempotency_key == key)
    ).scalar_one_or_none()


def stored_hash(row: TuningStudy) -> str | None:
    """The request hash the study was created with (what an Idempotency-Key replay must match)."""
    return (row.spec or {}).get("request_hash")


def tenant_query(tenant_id: str, status: str | None = None) -> Select:
    """The tenant's studies (with `status`, when given), for a keyset page."""
    query = select(TuningStudy).where(TuningStudy.tenant_id == tenant_id)
    return query if status is None else query.where(TuningStudy.status == status)


def trial_job_rows(session: Session, row: TuningStudy) -> dict[str, Job]:
    """The jobs of the study's trials (those in its trials table), by id."""
    ids = [t["job_id"] for t in row.trials or [] if t.get("job_id")]
    if not ids:
        return {}
    query = select(Job).where(Job.tenant_id == row.tenant_id, Job.id.in_(ids))
    return {j.id: j for j in session.execute(query).scalars()}


def summary(row: TuningStudy) -> dict[str, Any]:
    """The public fields of a study in a list: no trials table."""
    spec = row.spec or {}
    return {
        "id": row.id,
        "status": row.status,
        "dataset": spec.get("dataset", ""),
        "objective": spec.get("objective") or {},
        "search_space": spec.get("search_space") or {},
        "sampler": spec.get("sampler", ""),
        "pruner": spec.get("pruner", ""),
        "parallel": int(spec.get("parallel") or 0),
        "seed": spec.get("seed"),
        "progress": progress(row.trials or [], int(spec.get("trials") or 0)),
        "best_trial": row.best,
        "metadata": (spec.get("request") or {}).get("metadata"),
        "idempotency_key": row.idempotency_key,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "finished_at": row.finished_at,
    }


def _trial_fields(trial: dict[str, Any], job: Job | None) -> dict[str, Any]:
    out = {k: trial.get(k) for k in ("number", "state", "params", "value", "job_id", "intermediate",
                                     "constraint", "error", "started_at", "finished_at")}  # fmt: skip
    out["job_status"] = job.status if job is not None else None
    out["epoch"] = int(job.epoch or 0) if job is not None else 0
    out["epochs"] = int(job.epochs or 0) if job is not None else 0
    return out


def detail(row: TuningStudy, jobs: dict[str, Job]) -> dict[str, Any]:
    """The public fields of one study: the summary, the request and every trial with its job's status."""
    trials = [_trial_fields(t, jobs.get(t.get("job_id") or "")) for t in row.trials or []]
    return {**summary(row), "spec": (row.spec or {}).get("request") or {}, "trials": trials}


# ------------------------------------------------------------------------------------------- create


def _check_room(session: Session, tenant_id: str, parallel: int, limit: int) -> None:
    """SpecError when `parallel` trials can never run at once under the limit; RateLimited (how many
    fit) when they cannot now."""
    if parallel > limit:
        raise SpecError(
            "parallel", f"{parallel} trials at once exceed the limit of {limit} active jobs per tenant"
        )
    active = jobstate.count_active_locked(session, tenant_id)
    fit = max(limit - active, 0)
    if parallel > fit:
        raise RateLimited(
            f"{active} jobs are queued or running and the limit is {limit}: {fit} trials fit now, this "
            f"study runs {parallel} at once. Lower `parallel` to {fit} or retry when some have finished",
            retry_after=30,
            details={"field": "parallel", "fit": fit, "active": active, "limit": limit},
        )


def _check_init(session: Session, tenant_id: str, body: TuningCreate, base: dict, storage: Any) -> None:
    """The base's `model.init` and every one a `model.init.*` search path makes (its low / high or each
    choice) name the tenant's succeeded job, kept checkpoint or weights (SpecError naming the field)."""
    init = (base.get("model") or {}).get("init")
    check_init_source(session, tenant_id, init, storage)
    for path, param in body.search_space.items():
        if not (path + ".").startswith("model.init."):
            continue
        for value in param.extremes():
            try:
                check_init_source(
                    session, tenant_id, get_path(with_values(base, {path: value}), "model.init")
                )
            except SpecError as e:
                raise SpecError(f"search_space.{path}", f"{path}={value!r}: {e.field}: {e.reason}") from None


def _stored_spec(body: TuningCreate, body_hash: str, base: dict[str, Any], classes: list[str]) -> dict:
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31 - 1)
    if base["training"].get("seed") is None:
        base["training"]["seed"] = seed  # every trial on the same split and init seed
    tracking = body.trial_tracking()
    if tracking is not None:
        base["tracking"] = tracking  # every trial's run in the study's experiment
    dumped = body.model_dump(mode="json")
    return {
        "request": dumped,
        "request_hash": body_hash,
        "dataset": body.dataset,
        "classes": classes,
        "base": base,
        "search_space": dumped["search_space"],
        "objective": dumped["objective"],
        "trials": body.trials,
        "parallel": body.parallel,
        "sampler": body.sampler,
        "pruner": body.pruner,
        "seed": seed,
    }


def create(
    session: Session,
    settings: Settings,
    tenant_id: str,
    body: TuningCreate,
    *,
    idempotency_key: str | None,
    body_hash: str,
    storage: Any = None,
) -> TuningStudy:
    """Validate the request against its dataset (and its warm start's source: `storage` checks a
    `model.init.checkpoint`), check `parallel` fits the tenant's limit, store the study (`running`, no
    trial yet) and commit."""
    info = dataset_info(session, tenant_id, body.dataset)
    base, spec = check_request(body, info.classes, max_epochs=settings.max_epochs)
    _check_init(session, tenant_id, body, base, storage)
    check_not_full(session, settings, tenant_id)  # 429 storage_quota_exceeded: its trials store more
    _check_room(session, tenant_id, body.parallel, settings.max_active_jobs_per_tenant)
    row = TuningStudy(
        tenant_id=tenant_id,
        spec=_stored_spec(body, body_hash, base, spec["classes"]),
        status=TuningStatus.running.value,
        trials=[],
        idempotency_key=idempotency_key,
    )
    session.add(row)
    session.commit()
    return row


def send_step(study_id: str, settings: Settings) -> bool:
    """Send the study's step; False (logged) when the broker is down: the reconciler sends it later."""
    from core.queue import send_tuning_step

    try:
        send_tuning_step(study_id, settings)
    except Exception as exc:  # noqa: BLE001 - any broker failure
        log.warning("tuning %s: could not send its step (%s); the reconciler will", study_id, exc)
        return False
    return True


def send_first_step(session: Session, settings: Settings, row: TuningStudy) -> None:
    """Send the new study's first step and mark it sent (the reconciler's token)."""
    if send_step(row.id, settings):
        session.execute(
            update(TuningStudy).where(TuningStudy.id == row.id).values(dispatched_at=utcnow())
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        session.commit()
        session.refresh(row)


# ------------------------------------------------------------------------------------------- cancel


def cancel(session: Session, settings: Settings, tenant_id: str, study_id: str) -> TuningStudy:
    """Stop asking for trials and cancel the running ones' jobs (Conflict when the study has ended); it is
    `cancelling` until its driver has told Optuna about every trial, then `cancelled`."""
    row = get_for_tenant(session, tenant_id, study_id)
    if row.status not in TUNING_ACTIVE:
        raise Conflict(f"tuning study {row.id} is already {row.status}", details={"status": row.status})
    session.execute(
        update(TuningStudy)
        .where(TuningStudy.id == row.id, TuningStudy.status == TuningStatus.running.value)
        .values(status=TuningStatus.cancelling.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    for job in trial_job_rows(session, row).values():
        if job.status not in JOB_TERMINAL:
            jobstate.request_cancel(session, job.id)
    send_step(row.id, settings)
    session.refresh(row)
    return row
