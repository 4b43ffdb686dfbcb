"""The tenant's stored-bytes quota (`settings.max_stored_bytes_per_tenant`): what its stored objects occupy,
and the 429 `storage_quota_exceeded` (with Retry-After and details `used` / `quota`) past it.

    used = stored_bytes_used(session, tenant_id)       # datasets + weights + jobs' artifacts and checkpoints
    check_room(session, settings, tenant_id, 4096, what="this dataset")   # 4096 more bytes, or the 429
    check_not_full(session, settings, tenant_id)       # a job submission: 429 at or over the quota

Every quota check (dataset uploads and imports, weights uploads, job submission) counts the same sum, in
one query: the datasets' stored arrays (`Dataset.stored_bytes`), the uploaded weights
(`Weights.size_bytes`), the jobs' artifacts (`JobArtifact.size_bytes`) and the jobs' kept checkpoints
(`Job.checkpoint_bytes`, which the worker sets after every checkpoint save and collection). A failed job's
checkpoints are deleted when it fails, so its `checkpoint_bytes` does not count. Deleting datasets,
weights or ended jobs (`DELETE /v1/jobs/{id}`) makes room again.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db.models import Dataset, Job, JobArtifact, Weights
from core.errors import RateLimited
from core.settings import Settings
from core.status import JobStatus

__all__ = ["StorageQuotaExceeded", "check_not_full", "check_room", "quota_exceeded", "stored_bytes_used"]

RETRY_AFTER_S = 60
_HINT = "delete datasets, weights or ended jobs first"


class StorageQuotaExceeded(RateLimited):
    """The tenant's stored objects would pass its quota: 429 with Retry-After (delete some, or wait)."""

    code = "storage_quota_exceeded"


def _sum(column, *where):
    return select(func.coalesce(func.sum(column), 0)).where(*where).scalar_subquery()


def stored_bytes_used(session: Session, tenant_id: str) -> int:
    """The bytes the tenant's stored objects occupy (see the module docstring), in one query."""
    artifacts = (
        select(func.coalesce(func.sum(JobArtifact.size_bytes), 0))
        .join(Job, Job.id == JobArtifact.job_id)
        .where(Job.tenant_id == tenant_id)
        .scalar_subquery()
    )
    parts = session.execute(
        select(
            _sum(Dataset.stored_bytes, Dataset.tenant_id == tenant_id),
            _sum(Weights.size_bytes, Weights.tenant_id == tenant_id),
            artifacts,
            _sum(Job.checkpoint_bytes, Job.tenant_id == tenant_id, Job.status != JobStatus.failed.value),
        )
    ).one()
    return sum(int(part or 0) for part in parts)


def quota_exceeded(
    session: Session,
    settings: Settings,
    tenant_id: str,
    needed: int,
    *,
    what: str,
    error: type[StorageQuotaExceeded] = StorageQuotaExceeded,
) -> StorageQuotaExceeded:
    """The 429 for storing `what` (`needed` bytes): its message names the quota, the usage and the way out."""
    used, quota = stored_bytes_used(session, tenant_id), settings.max_stored_bytes_per_tenant
    return error(
        f"storing {what} ({needed} bytes) would pass the tenant's quota of {quota} bytes ({used} used); "
        f"{_HINT}",
        details={"used": used, "quota": quota, "needed": needed},
        retry_after=RETRY_AFTER_S,
    )


def check_room(
    session: Session,
    settings: Settings,
    tenant_id: str,
    new_bytes: int,
    *,
    what: str,
    error: type[StorageQuotaExceeded] = StorageQuotaExceeded,
) -> None:
    """`error` (a StorageQuotaExceeded) when `new_bytes` more would pass the tenant's quota."""
    if stored_bytes_used(session, tenant_id) + new_bytes > settings.max_stored_bytes_per_tenant:
        raise quota_exceeded(session, settings, tenant_id, new_bytes, what=what, error=error)


def check_not_full(session: Session, settings: Settings, tenant_id: str) -> None:
    """StorageQuotaExceeded when the tenant is at or over its quota: a new job would store more (its
    checkpoints and artifacts), of a size not known before it trains."""
    used, quota = stored_bytes_used(session, tenant_id), settings.max_stored_bytes_per_tenant
    if used >= quota:
        raise StorageQuotaExceeded(
            f"the tenant's stored objects ({used} bytes) fill its quota of {quota} bytes and a job "
            f"stores checkpoints and artifacts; {_HINT}",
            details={"used": used, "quota": quota},
            retry_after=RETRY_AFTER_S,
        )
