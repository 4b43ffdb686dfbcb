"""Comparisons as a service: create one (its children validated as full jobs and stored with it), derive
its status from its children's, store the report once they have all ended, cancel, list and get for a
tenant. The REST routes parse, call these and answer; sending the children's training tasks
(`core.queue.send_train`) is the caller's, once `create` has committed them.

    comp, job_ids = create(session, settings, tenant, body, idempotency_key=key, body_hash=h, storage=st)
    comp, kids = get_finalised(session, storage, tenant, comparison_id)  # the report once all ended
    detail(comp, kids)       # the public fields: id, status, progress, children, report, ...
    comp, kids = cancel(session, storage, tenant, comparison_id)
    rows = session.execute(tenant_query(tenant, status)).scalars().all()
    summaries(session, rows)

Statuses (`core.status.ComparisonStatus`): `running`, `cancelling` (cancel requested, children still
ending), then `succeeded` (every child succeeded), `partial` (some did), `failed` (none did) or
`cancelled`. Another tenant's comparison is NotFound. Every child trains through the normal job path: the
same validation (`core.jobspec.validate_job`, every arm of the comparison and every grid point of its
sweep), the same per-tenant limit on active jobs (all children must fit: a 429 says how many would fit
now), the same check of a warm start's source (`core.weights_store.check_init_source`: the tenant's
succeeded job, a checkpoint it keeps, or its uploaded weights) and, once dispatched, the same queue (each
child with the comparison's `priority` and `resources`). A comparison makes at most
`core.compare.sweep.MAX_CHILDREN` child jobs.
"""

from __future__ import annotations

import copy
import io
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from core.compare.report import HEADLINE, ChildRun, build_report
from core.compare.spec import (
    Arm,
    ComparisonCreate,
    arm_error,
    arms,
    child_jobs,
    request_dump,
    seed_of,
    seed_values,
    variants_public,
)
from core.dataset_store import dataset_info
from core.db import jobs as jobstate
from core.db.models import Comparison, Job, JobArtifact, JobEpoch
from core.db.types import now as utcnow
from core.errors import Conflict, NotFound, RateLimited, SpecError
from core.jobspec import JobCreate, validate_job
from core.settings import Settings
from core.status import COMPARISON_TERMINAL, JOB_TERMINAL, ComparisonStatus, JobStatus
from core.storage_quota import check_not_full
from core.weights_store import check_init_source

__all__ = [
    "ACTIVE",
    "Progress",
    "cancel",
    "check_init_sources",
    "children",
    "comparison_report",
    "create",
    "derived_status",
    "detail",
    "finalise_if_done",
    "find_by_key",
    "get_finalised",
    "get_for_tenant",
    "load_children",
    "progress",
    "stored_hash",
    "summaries",
    "summary",
    "tenant_query",
    "validated_children",
]

ACTIVE = tuple(s.value for s in ComparisonStatus if s not in COMPARISON_TERMINAL)
"""The statuses of a comparison whose children may still be running (`running`, `cancelling`)."""
PREDICTIONS = "predictions.npz"


@dataclass(frozen=True)
class Progress:
    """The children of a comparison counted by status; `fraction`: epochs done over epochs planned."""

    total: int
    queued: int = 0
    running: int = 0
    paused: int = 0  # active: a paused child resumes later
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    fraction: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Child:
    """One child job to create: its variant (its arm's name) and seed, the request, the validated spec and
    the arm of the comparison it trains."""

    variant: str
    seed: int
    job: JobCreate
    spec: dict[str, Any]
    arm: Arm


# --------------------------------------------------------------------------------------------- reads


def get_for_tenant(session: Session, tenant_id: str, comparison_id: str) -> Comparison:
    """The tenant's comparison, or NotFound (also for another tenant's)."""
    row = session.execute(
        select(Comparison).where(Comparison.id == comparison_id[:64], Comparison.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"comparison {comparison_id[:64]!r} not found")
    return row


def find_by_key(session: Session, tenant_id: str, key: str) -> Comparison | None:
    """The tenant's comparison created with this Idempotency-Key, if any."""
    return session.execute(
        select(Comparison).where(Comparison.tenant_id == tenant_id, Comparison.idempotency_key == key)
    ).scalar_one_or_none()


def stored_hash(comp: Comparison) -> str | None:
    """The request hash the comparison was created with (what an Idempotency-Key replay must match)."""
    return (comp.spec or {}).get("request_hash")


def children(session: Session, comparison_id: str) -> list[Job]:
    """The comparison's child jobs, oldest first."""
    query = select(Job).where(Job.comparison_id == comparison_id).order_by(Job.created_at, Job.id)
    return list(session.execute(query).scalars().all())


def tenant_query(tenant_id: str, status: str | None = None) -> Select:
    """The tenant's comparisons (with `status`, when given), for a keyset page."""
    query = select(Comparison).where(Comparison.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Comparison.status == status)
    return query


# ------------------------------------------------------------------------------------------ status


def progress(rows: Iterable[tuple[str, int | None, int | None]]) -> Progress:
    """From (status, epoch, epochs) of every child."""
    counts = {s.value: 0 for s in JobStatus}
    done = planned = 0.0
    total = 0
    for st, epoch, epochs in rows:
        total += 1
        if st in counts:
            counts[st] += 1
        epochs = max(int(epochs or 0), 1)
        planned += epochs
        done += epochs if st in JOB_TERMINAL else min(max(int(epoch or 0), 0), epochs)
    fraction = done / planned if planned else 0.0
    return Progress(total=total, fraction=min(max(fraction, 0.0), 1.0), **counts)


def _progress_of(kids: list[Job]) -> Progress:
    return progress((j.status, j.epoch, j.epochs) for j in kids)


def derived_status(stored: str, p: Progress) -> str:
    """The stored status while children are active; the final one once all have ended."""
    if stored not in ACTIVE or p.total == 0 or p.queued + p.running + p.paused > 0:
        return stored
    if p.succeeded == p.total:
        return ComparisonStatus.succeeded.value
    if stored == ComparisonStatus.cancelling and p.cancelled:
        return ComparisonStatus.cancelled.value
    return (ComparisonStatus.partial if p.succeeded else ComparisonStatus.failed).value


def summary(comp: Comparison, p: Progress) -> dict[str, Any]:
    """The public fields of a comparison in a list (`ComparisonSummary`)."""
    spec = comp.spec or {}
    return {
        "id": comp.id,
        "status": derived_status(comp.status, p),
        "dataset": spec.get("dataset", ""),
        "classes": list(spec.get("classes") or []),
        "variants": list(spec.get("variants") or []),
        "seeds": list(spec.get("seed_values") or []),
        "sweep": (spec.get("sweep") or {}).get("axes"),
        "progress": p.as_dict(),
        "metadata": (spec.get("request") or {}).get("metadata"),
        "idempotency_key": comp.idempotency_key,
        "created_at": comp.created_at,
        "updated_at": comp.updated_at,
        "finished_at": comp.finished_at,
    }


def _job_error(job: Job) -> dict[str, str] | None:
    return {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None


def _child_fields(job: Job) -> dict[str, Any]:
    metrics = None
    if job.status == JobStatus.succeeded and job.final_metrics:
        metrics = {k: job.final_metrics[k] for k in HEADLINE if k in job.final_metrics}
    return {
        "job_id": job.id,
        "variant": job.variant or "",
        "seed": seed_of(job.spec),
        "status": job.status,
        "epoch": int(job.epoch or 0),
        "epochs": int(job.epochs or 0),
        "metrics": metrics,
        "error": _job_error(job),
    }


def detail(comp: Comparison, kids: list[Job]) -> dict[str, Any]:
    """The public fields of one comparison (`ComparisonPublic` but its `report_url`): the summary, the
    request, the children by seed then variant (headline metrics once succeeded) and the report."""
    spec = comp.spec or {}
    order = {v.get("name"): i for i, v in enumerate(spec.get("variants") or [])}
    last = len(order)
    ordered = sorted(kids, key=lambda j: (seed_of(j.spec), order.get(j.variant, last), j.variant or ""))
    return {
        **summary(comp, _progress_of(kids)),
        "spec": spec.get("request") or {},
        "children": [_child_fields(j) for j in ordered],
        "report": comp.report,
    }


def summaries(session: Session, rows: list[Comparison]) -> list[dict[str, Any]]:
    """`summary` of each comparison, its children's progress read in one query."""
    kids: dict[str, list[tuple[str, int, int]]] = {c.id: [] for c in rows}
    if kids:
        query = select(Job.comparison_id, Job.status, Job.epoch, Job.epochs).where(
            Job.comparison_id.in_(list(kids))
        )
        for cid, st, epoch, epochs in session.execute(query):
            kids[cid].append((st, epoch, epochs))
    return [summary(c, progress(kids[c.id])) for c in rows]


# ------------------------------------------------------------------------------------------ create


def _validated_specs(trained_and_probes: list[Arm], classes: list[str], max_epochs: int) -> dict[str, dict]:
    """Every arm through the job path (`validate_job`), probes included; the spec of each trained arm by
    name. An arm that fails raises the SpecError naming its request field (`arm_error`)."""
    seen: dict[str, dict[str, Any]] = {}
    out: dict[str, dict[str, Any]] = {}
    for arm in trained_and_probes:
        key = json.dumps(arm.job.model_dump(mode="json"), sort_keys=True)
        if key not in seen:
            try:
                seen[key] = validate_job(arm.job, classes, max_epochs=max_epochs)
            except SpecError as e:
                raise arm_error(arm, e.field, e.reason) from None
        if arm.trained:
            out[arm.name] = seen[key]
    return out


def validated_children(
    body: ComparisonCreate, dataset_classes: list[str], max_epochs: int, seeds: list[int]
) -> list[Child]:
    """One `Child` per (arm, seed): the baseline, each variant and, when swept, each variant at each grid
    point, each arm validated once by the job path (`validate_job`); an error names the request field
    (`variants.<i>.loss...`, `sweep.<a>.values.<j>`, see `core.compare.spec`)."""
    every = arms(body)
    trained = [a for a in every if a.trained]
    specs = _validated_specs(every, dataset_classes, max_epochs)
    out = []
    for arm, seed, job in child_jobs(body, seeds, trained):
        spec = copy.deepcopy(specs[arm.name])
        spec["training"]["seed"] = seed
        spec["metadata"] = job.metadata
        spec["tracking"] = job.model_dump(mode="json", include={"tracking"})["tracking"]
        out.append(Child(arm.name, seed, job, spec, arm))
    return out


def check_init_sources(session: Session, tenant_id: str, every: list[Arm], storage: Any = None) -> None:
    """Each distinct `model.init` of the arms (probes included) checked as a job's is at submission
    (`check_init_source`); a bad one raises the SpecError naming its request field (`arm_error`:
    `model.init.from_job`, `variants.<i>.model.init.weights`, `sweep.<a>.values.<j>`)."""
    seen: set[str] = set()
    for arm in every:
        init = arm.job.model.init
        key = json.dumps(init.model_dump(mode="json"), sort_keys=True) if init is not None else ""
        if init is None or key in seen:
            continue
        seen.add(key)
        try:
            check_init_source(session, tenant_id, init, storage)
        except SpecError as e:
            raise arm_error(arm, e.field, e.reason) from None


def _check_room(session: Session, tenant_id: str, n: int, per_seed: int, limit: int, field: str) -> None:
    """SpecError (naming `field`) when `n` children can never fit the active jobs limit; RateLimited,
    saying how many would fit, when they do not fit now. Leaves the tenant's row locked (PostgreSQL)
    until the children are committed."""
    if n > limit:
        raise SpecError(
            field, f"{n} child jobs (arms x seeds) exceed the limit of {limit} active jobs per tenant"
        )
    active = jobstate.count_active_locked(session, tenant_id)
    if active + n > limit:
        room = max(limit - active, 0)
        raise RateLimited(
            f"{active} jobs are queued or running and this comparison adds {n}; the limit is {limit}, so "
            f"{room} would fit now ({room // per_seed} seeds of its {per_seed} arms). "
            "Retry when some have finished",
            retry_after=30,
            details={"active": active, "requested": n, "limit": limit, "would_fit": room,
                     "seeds_that_fit": room // per_seed},
        )  # fmt: skip


def _stored_spec(
    body: ComparisonCreate, body_hash: str, seeds: list[int], first: dict, trained: list[Arm]
) -> dict[str, Any]:
    variants = variants_public(body, trained)
    sweep = None
    if body.sweep:
        sweep = {"axes": [a.model_dump(mode="json") for a in body.sweep]}
    return {
        "request": request_dump(body),
        "request_hash": body_hash,
        "dataset": body.dataset,
        "classes": first["classes"],
        "similarity": first.get("similarity"),
        "seed_values": seeds,
        "variants": variants,
        "variant_names": [v["name"] for v in variants],
        "sweep": sweep,
    }


def create(
    session: Session,
    settings: Settings,
    tenant_id: str,
    body: ComparisonCreate,
    *,
    idempotency_key: str | None,
    body_hash: str,
    storage: Any = None,
) -> tuple[Comparison, list[str]]:
    """Validate every child (and its warm start's source: `storage` checks a `model.init.checkpoint`),
    check they fit the tenant's active jobs limit, store the comparison with its children (queued) and
    commit. Returns the comparison and the child job ids, to dispatch."""
    info = dataset_info(session, tenant_id, body.dataset)
    seeds = seed_values(body)
    kids = validated_children(body, info.classes, settings.max_epochs, seeds)
    check_init_sources(session, tenant_id, arms(body), storage)
    per_seed = len(kids) // len(seeds)
    field = "sweep" if body.sweep else "seeds"
    check_not_full(session, settings, tenant_id)  # 429 storage_quota_exceeded: its jobs store more
    _check_room(session, tenant_id, len(kids), per_seed, settings.max_active_jobs_per_tenant, field)
    trained = [kid.arm for kid in kids[:per_seed]]  # ordered by seed, then arm
    comp = Comparison(
        tenant_id=tenant_id,
        spec=_stored_spec(body, body_hash, seeds, kids[0].spec, trained),
        status=ComparisonStatus.running.value,
        idempotency_key=idempotency_key,
    )
    session.add(comp)
    session.flush()
    job_ids = [
        jobstate.create_job(
            session,
            tenant_id=tenant_id,
            dataset_ref=body.dataset,
            spec=kid.spec,
            epochs=kid.job.training.epochs,
            max_attempts=settings.max_attempts,
            request_hash=jobstate.request_hash(kid.job),
            comparison_id=comp.id,
            variant=kid.variant,
        ).id
        for kid in kids
    ]
    session.commit()
    return comp, job_ids


# ---------------------------------------------------------------------------------- finalise, cancel


def finalise_if_done(session: Session, storage: Any, comp: Comparison, kids: list[Job]) -> Comparison:
    """When every child has ended and there is no report yet: build it, store it with the final status."""
    if comp.status not in ACTIVE:
        return comp
    final = derived_status(comp.status, _progress_of(kids))
    if final in ACTIVE:
        return comp
    report = comparison_report(session, storage, comp)
    session.rollback()  # end the read transaction before the write
    t = utcnow()
    session.execute(
        update(Comparison)
        .where(Comparison.id == comp.id, Comparison.status.in_(ACTIVE))
        .values(status=final, report=report, finished_at=t, updated_at=t)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    session.refresh(comp)
    return comp


def get_finalised(
    session: Session, storage: Any, tenant_id: str, comparison_id: str
) -> tuple[Comparison, list[Job]]:
    """The tenant's comparison (finalised when its children have all ended) and its children."""
    comp = get_for_tenant(session, tenant_id, comparison_id)
    kids = children(session, comp.id)
    return finalise_if_done(session, storage, comp, kids), kids


def cancel(
    session: Session, storage: Any, tenant_id: str, comparison_id: str
) -> tuple[Comparison, list[Job]]:
    """Cancel every child that has not ended (Conflict when the comparison already has); the comparison
    is `cancelling` until they have, then finalised."""
    comp, kids = get_finalised(session, storage, tenant_id, comparison_id)
    if comp.status not in ACTIVE:
        raise Conflict(f"comparison {comp.id} is already {comp.status}", details={"status": comp.status})
    session.execute(
        update(Comparison)
        .where(Comparison.id == comp.id, Comparison.status == ComparisonStatus.running.value)
        .values(status=ComparisonStatus.cancelling.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    for job in kids:
        if job.status not in JOB_TERMINAL:
            jobstate.request_cancel(session, job.id)
    session.expire_all()
    return get_finalised(session, storage, tenant_id, comparison_id)


# ------------------------------------------------------------------------------------------- report


def _load_predictions(storage: Any, key: str) -> dict[str, np.ndarray] | None:
    try:
        raw = storage.get_bytes(key)
    except (FileNotFoundError, OSError, ValueError):
        return None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            keys = ["indices", "targets", "probs"]
            if "test_probs" in z.files:  # a test split: the report's per-sample statistics use it
                keys += ["test_indices", "test_targets", "test_probs"]
            return {k: np.asarray(z[k]) for k in keys}
    except (KeyError, ValueError, OSError):
        return None


def _histories_and_predictions(session: Session, ids: list[str]) -> tuple[dict[str, list], dict[str, str]]:
    """Each job's epoch records (in epoch order) and the storage key of its predictions."""
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not ids:
        return history, {}
    rows = session.execute(
        select(JobEpoch.job_id, JobEpoch.record)
        .where(JobEpoch.job_id.in_(ids))
        .order_by(JobEpoch.job_id, JobEpoch.epoch)
    )
    for job_id, record in rows:
        history[job_id].append(record or {})
    rows = session.execute(
        select(JobArtifact.job_id, JobArtifact.storage_key).where(
            JobArtifact.job_id.in_(ids), JobArtifact.name == PREDICTIONS
        )
    )
    return history, {job_id: key for job_id, key in rows}


def load_children(session: Session, storage: Any, comparison_id: str) -> list[ChildRun]:
    """The comparison's child jobs with their final metrics, epoch history and stored predictions."""
    jobs = session.execute(select(Job).where(Job.comparison_id == comparison_id)).scalars().all()
    history, preds = _histories_and_predictions(session, [j.id for j in jobs])
    out = []
    for j in jobs:
        succeeded = j.status == JobStatus.succeeded
        out.append(
            ChildRun(
                job_id=j.id,
                variant=j.variant or "",
                seed=seed_of(j.spec),
                status=j.status,
                metrics=j.final_metrics if succeeded else None,
                history=history.get(j.id, []),
                predictions=_load_predictions(storage, preds[j.id]) if succeeded and j.id in preds else None,
                error=_job_error(j),
                epochs_completed=j.epoch,
            )
        )
    return out


def comparison_report(session: Session, storage: Any, comp: Comparison, *, n_boot: int = 2000) -> dict:
    """Build the report of `comp` (whose children have all ended) from its children's stored data.

    Its `spec` holds the request plus `classes` (resolved), `seed_values`, `variant_names` and, for a
    swept comparison, `sweep.axes` and every variant's grid `point`."""
    spec = comp.spec or {}
    runs = load_children(session, storage, comp.id)
    variants = list(spec.get("variant_names") or [])
    variants += [v for v in dict.fromkeys(r.variant for r in runs) if v not in variants]
    return build_report(
        runs,
        classes=list(spec.get("classes") or []),
        similarity_spec=spec.get("similarity"),
        seeds=list(spec.get("seed_values") or sorted({r.seed for r in runs})),
        variants=variants,
        n_boot=n_boot,
        sweep=_sweep_of(spec),
    )


def _sweep_of(spec: dict[str, Any]) -> dict[str, Any] | None:
    """`{"axes", "points": {child variant name: {"variant", "point"}}}` of a stored swept comparison."""
    axes = (spec.get("sweep") or {}).get("axes")
    if not axes:
        return None
    points = {
        v["name"]: {"variant": v.get("variant"), "point": v["point"]}
        for v in spec.get("variants") or []
        if v.get("point") is not None
    }
    return {"axes": axes, "points": points}
