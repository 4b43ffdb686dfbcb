"""What a job's MLflow run is made of, read from the database: `RunContext` and its parent `GroupRun`.

    ctx = run_context(session, job)      # experiment, run name, params, tags, parent (comparison / study)
    stored_run(session, job_id)          # {"run_id", "experiment_id", ...} an earlier attempt recorded
    group_status(session, job)           # "succeeded" / "failed" / "cancelled" once its group has ended

The experiment is `<tenant name>/<tracking.mlflow.experiment>` (default `<tenant name>/simtrain`): one
MLflow server serves every tenant, so each tenant's experiments keep to its own namespace. The params
are the whole stored spec, flattened; the tags name the job, its tenant, dataset, seed, variant, the
comparison or tuning study it belongs to and its string metadata (`meta.<key>`). A comparison's children
and a tuning study's trials hang under one parent run (`mlflow.parentRunId`), keyed by the tag
`simtrain.group` (`comparison:<id>` / `tuning:<id>`), in the children's experiment: the comparison's or
study's own `tracking.mlflow.experiment`, which its children carry (`core.compare.spec.child_tracking`,
`TuningCreate.trial_tracking`). The parent run is named by the request's `tracking.mlflow.run_name`
(default `comparison-<id8>` / `tuning-<id8>`); when the group ends it gets `group_metrics`: children
per status and, per variant, the mean of the children's final metrics (a comparison) or the best
objective value (a study).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.models import Comparison, Job, JobEvent, Tenant, TuningStudy
from core.status import JOB_TERMINAL, JobStatus
from core.tracking.flatten import flat_params, mlflow_key, scalar_metrics, tag_value
from core.tuning.objective import final_value
from core.tuning.status import TuningStatus

__all__ = [
    "DEFAULT_EXPERIMENT",
    "EVENT_KEY",
    "GROUP_TAG",
    "GroupRun",
    "RunContext",
    "group_metrics",
    "group_status",
    "mlflow_spec",
    "run_context",
    "stored_run",
]

DEFAULT_EXPERIMENT = "simtrain"
GROUP_TAG = "simtrain.group"
EVENT_KEY = "mlflow"  # the job event whose data["mlflow"] records the run (`stored_run`)


@dataclass
class GroupRun:
    """The parent run of a comparison or a tuning study: `key` finds it, the rest creates it."""

    key: dict[str, str]
    run_name: str
    tags: dict[str, str]
    params: dict[str, str]


@dataclass
class RunContext:
    """A job's run: where it goes, what it is called, its params and tags, and its parent (if any)."""

    experiment: str
    run_name: str
    params: dict[str, str]
    tags: dict[str, str]
    parent: GroupRun | None = None
    requested: bool = False  # the spec names `tracking.mlflow`


def mlflow_spec(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The spec's `tracking.mlflow` (a dict), or None."""
    tracking = spec.get("tracking") or {}
    return tracking.get("mlflow") if isinstance(tracking, dict) else None


def _tuning_link(spec: dict[str, Any]) -> dict[str, Any] | None:
    link = (spec.get("metadata") or {}).get("tuning")
    return link if isinstance(link, dict) and "study" in link else None


def _job_tags(job: Job, tenant: str) -> dict[str, str]:
    spec, meta = job.spec or {}, dict((job.spec or {}).get("metadata") or {})
    tags = {"simtrain.job_id": job.id, "simtrain.tenant_id": job.tenant_id, "simtrain.tenant": tenant,
            "simtrain.dataset": job.dataset_ref}  # fmt: skip
    seed = (spec.get("training") or {}).get("seed")
    if seed is not None:
        tags["simtrain.seed"] = str(seed)
    if job.variant or meta.get("variant"):
        tags["simtrain.variant"] = str(job.variant or meta.get("variant"))
    if job.comparison_id:
        tags["simtrain.comparison_id"] = job.comparison_id
    link = _tuning_link(spec)
    if link:
        tags["simtrain.tuning_study_id"] = str(link["study"])
        tags["simtrain.tuning_trial"] = str(link.get("trial"))
    for key, value in meta.items():
        if isinstance(value, str):
            tags[mlflow_key(f"meta.{key}")] = tag_value(value)
    return tags


def _run_name(job: Job, tags: dict[str, str], named: str | None) -> str:
    if named:
        return named
    if "simtrain.variant" in tags and "simtrain.seed" in tags:
        return f"{tags['simtrain.variant']}-seed{tags['simtrain.seed']}"
    if "simtrain.tuning_trial" in tags:
        return f"trial-{tags['simtrain.tuning_trial']}"
    return f"job-{job.id[:8]}"


def _group_name(request: dict[str, Any], default: str) -> str:
    """The parent run's name: the request's `tracking.mlflow.run_name`, else `default`."""
    return (mlflow_spec(request) or {}).get("run_name") or default


def _group(session: Session, job: Job, tenant: str) -> GroupRun | None:
    """The comparison's or the tuning study's parent run, when the job is one of its children."""
    base = {"simtrain.tenant_id": job.tenant_id, "simtrain.tenant": tenant}
    if job.comparison_id:
        comp = session.get(Comparison, job.comparison_id)
        request = ((comp.spec if comp else None) or {}).get("request") or {}
        name = _group_name(request, f"comparison-{job.comparison_id[:8]}")
        return GroupRun(
            key={GROUP_TAG: f"comparison:{job.comparison_id}"}, run_name=name,
            tags={**base, "simtrain.comparison_id": job.comparison_id}, params=flat_params(request),
        )  # fmt: skip
    link = _tuning_link(job.spec or {})
    if link:
        study = session.get(TuningStudy, str(link["study"]))
        request = ((study.spec if study else None) or {}).get("request") or {}
        name = _group_name(request, f"tuning-{str(link['study'])[:8]}")
        return GroupRun(
            key={GROUP_TAG: f"tuning:{link['study']}"}, run_name=name,
            tags={**base, "simtrain.tuning_study_id": str(link["study"])}, params=flat_params(request),
        )  # fmt: skip
    return None


def run_context(session: Session, job: Job) -> RunContext:
    """The run of `job` (see the module docstring)."""
    tenant_row = session.get(Tenant, job.tenant_id)
    tenant = tenant_row.name if tenant_row is not None else job.tenant_id
    named = mlflow_spec(job.spec or {})
    tags = _job_tags(job, tenant)
    experiment = (named or {}).get("experiment") or DEFAULT_EXPERIMENT
    return RunContext(
        experiment=f"{tenant}/{experiment}",
        run_name=_run_name(job, tags, (named or {}).get("run_name")),
        params=flat_params(job.spec or {}),
        tags=tags,
        parent=_group(session, job, tenant),
        requested=named is not None,
    )


def stored_run(session: Session, job_id: str) -> dict[str, Any] | None:
    """The run an earlier attempt of the job recorded in its events (`data["mlflow"]`), if any."""
    query = (
        select(JobEvent.data)
        .where(JobEvent.job_id == job_id, JobEvent.kind == "info")
        .order_by(JobEvent.id.desc())
        .limit(500)
    )
    for data in session.execute(query).scalars():
        found = (data or {}).get(EVENT_KEY) if isinstance(data, dict) else None
        if isinstance(found, dict) and found.get("run_id"):
            return found
    return None


def _ended_as(statuses: list[str]) -> str:
    if JobStatus.succeeded in statuses:
        return JobStatus.succeeded.value
    if statuses and all(s == JobStatus.cancelled for s in statuses):
        return JobStatus.cancelled.value
    return JobStatus.failed.value


def group_status(session: Session, job: Job) -> str | None:
    """How the job's comparison or tuning study ended (for its parent run), or None while it goes on:
    a comparison once all its children have ended; a study once all its trials have ended and either
    every trial it asks for exists or it is no longer running."""
    if job.comparison_id:
        statuses = list(
            session.execute(select(Job.status).where(Job.comparison_id == job.comparison_id)).scalars()
        )
        return _ended_as(statuses) if all(s in JOB_TERMINAL for s in statuses) else None
    link = _tuning_link(job.spec or {})
    study = session.get(TuningStudy, str(link["study"])) if link else None
    if study is None:
        return None
    query = select(Job.status).where(  # trial jobs: Idempotency-Key core.tuning.trials.job_key
        Job.tenant_id == job.tenant_id, Job.idempotency_key.like(f"tuning:{study.id}:%")
    )
    statuses = list(session.execute(query).scalars())
    if not all(s in JOB_TERMINAL for s in statuses):
        return None
    asked_all = len(statuses) >= int((study.spec or {}).get("trials") or 0)
    return _ended_as(statuses) if asked_all or study.status != TuningStatus.running else None


def _group_jobs(session: Session, job: Job) -> list[Job]:
    """The comparison's children or the study's trial jobs (`job` among them)."""
    if job.comparison_id:
        return list(session.execute(select(Job).where(Job.comparison_id == job.comparison_id)).scalars())
    link = _tuning_link(job.spec or {})
    if not link:
        return []
    query = select(Job).where(
        Job.tenant_id == job.tenant_id, Job.idempotency_key.like(f"tuning:{link['study']}:%")
    )
    return list(session.execute(query).scalars())


def _mean_by_variant(jobs: list[Job]) -> dict[str, float]:
    """`<variant>.<metric>`: the mean final metric over a comparison's succeeded children of a variant."""
    sums: dict[str, list[float]] = {}
    for j in jobs:
        if j.status != JobStatus.succeeded:
            continue
        for key, value in scalar_metrics(j.final_metrics or {}).items():
            sums.setdefault(mlflow_key(f"{j.variant or 'job'}.{key}"), []).append(value)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def _best_trial(session: Session, job: Job, jobs: list[Job]) -> dict[str, float]:
    """`best.<metric>`: the study's best objective value over its succeeded trials (its direction)."""
    link = _tuning_link(job.spec or {})
    study = session.get(TuningStudy, str(link["study"])) if link else None
    objective = ((study.spec if study else None) or {}).get("objective") or {}
    metric = objective.get("metric")
    succeeded = [j for j in jobs if j.status == JobStatus.succeeded]
    values = [v for v in (final_value(j.final_metrics, metric) for j in succeeded) if v is not None]
    if not metric or not values:
        return {}
    best = min(values) if objective.get("direction") == "minimize" else max(values)
    return {mlflow_key(f"best.{metric}"): best}


def group_metrics(session: Session, job: Job) -> dict[str, float]:
    """What the parent run logs when its group has ended: `children.<status>` counts, and per variant
    the mean of the succeeded children's final metrics (a comparison) or the best objective (a study)."""
    jobs = _group_jobs(session, job)
    out: dict[str, float] = {}
    for j in jobs:
        key = f"children.{j.status}"
        out[key] = out.get(key, 0.0) + 1.0
    out.update(_mean_by_variant(jobs) if job.comparison_id else _best_trial(session, job, jobs))
    return out
