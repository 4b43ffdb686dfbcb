"""SQLAlchemy 2 models: tenants, API keys, datasets, jobs with their events/epochs/artifacts, comparisons.

The schema is created by Alembic (`migrations/`); `tests/service/test_migrations.py` checks that the
migrations and these models agree.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db.types import BigIntPK, JSONType, UTCDateTime, new_id, now
from core.status import JOB_TERMINAL, ComparisonStatus, JobStatus

__all__ = [
    "Base",
    "JobStatus",
    "ComparisonStatus",
    "TERMINAL",
    "Tenant",
    "ApiKey",
    "Dataset",
    "DatasetStatus",
    "Job",
    "JobEvent",
    "JobEpoch",
    "JobArtifact",
    "Comparison",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


TERMINAL = JOB_TERMINAL  # the name the database layer has used


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class DatasetStatus(StrEnum):
    """A dataset's status: `ready` to train on, `importing` while its data arrives, `failed` (see `error`)."""

    ready = "ready"
    importing = "importing"
    failed = "failed"


class Dataset(Base):
    """An uploaded dataset. Its arrays are stored next to `storage_key` (`datasets/{tenant}/{id}/meta.json`
    beside `x.npy` and `y.npy`; a `.npz` key for datasets stored by earlier versions). The same file with
    the same options (`options_hash`: label column, image size, resize) is one dataset per tenant."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sha256", "options_hash", name="uq_datasets_tenant_sha256_options"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    num_samples: Mapped[int] = mapped_column(Integer)
    feature_shape: Mapped[list[int]] = mapped_column(JSONType)
    classes: Mapped[list[str]] = mapped_column(JSONType)
    class_counts: Mapped[list[int]] = mapped_column(JSONType)
    storage_key: Mapped[str] = mapped_column(String(300))
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    status: Mapped[str] = mapped_column(
        String(16), default=DatasetStatus.ready.value, server_default=DatasetStatus.ready.value
    )
    source_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)  # code, message, field
    preprocessing: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    dtype: Mapped[str] = mapped_column(String(16), default="float32", server_default="float32")
    options_hash: Mapped[str] = mapped_column(String(64), default="", server_default=text("''"))


class Comparison(Base):
    __tablename__ = "comparisons"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=ComparisonStatus.running.value)
    report: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, onupdate=now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    dataset_ref: Mapped[str] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_requested: Mapped[bool] = mapped_column(  # running: pause at the next epoch boundary
        Boolean, default=False, server_default=false()
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    epochs: Mapped[int] = mapped_column(Integer)
    checkpoint_bytes: Mapped[int] = mapped_column(  # the kept checkpoints' sizes (core.storage_quota)
        BigInteger, default=0, server_default="0"
    )
    latest_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    device: Mapped[str | None] = mapped_column(String(32), nullable=True)
    train_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comparison_id: Mapped[str | None] = mapped_column(
        ForeignKey("comparisons.id", ondelete="CASCADE"), nullable=True, index=True
    )
    variant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, onupdate=now)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobEvent(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class JobEpoch(Base):
    __tablename__ = "job_epochs"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class JobArtifact(Base):
    __tablename__ = "job_artifacts"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(100))
    storage_key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class Weights(Base):
    """An uploaded safetensors file a job can warm-start from (`model.init: {"weights": id}`)."""

    __tablename__ = "weights"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    num_tensors: Mapped[int] = mapped_column(Integer)
    num_parameters: Mapped[int] = mapped_column(BigInteger)
    dtypes: Mapped[list[str]] = mapped_column(JSONType)
    classes: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    storage_key: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class DeliveryStatus(StrEnum):
    """A webhook delivery's status: `pending` (to be tried, `next_attempt_at`), `succeeded` (a 2xx answer),
    `failed` (every attempt failed)."""

    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class Webhook(Base):
    """A tenant's webhook endpoint (`core.webhooks`): the `url` events are POSTed to, the `events` it wants
    (names and `prefix.*` patterns) and the `secret` (`whsec_...`) deliveries are signed with, kept
    server-side so the worker can sign."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_tenant_created", "tenant_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSONType)
    description: Mapped[str] = mapped_column(String(200), default="")
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


class WebhookDelivery(Base):
    """One event for one webhook (the transactional outbox): `id` (`msg_<hex>`) is the `webhook-id` header
    of every attempt; `attempt_log` records each attempt (status code, error, duration); a worker holds
    the row while it sends (`lease_owner` until `lease_expires_at`), like a job."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, onupdate=now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


__all__ += ["DeliveryStatus", "Webhook", "WebhookDelivery"]


class TuningStudy(Base):
    """A tuning study (`core.tuning`): an Optuna study of the same name in Optuna's own tables (the same
    database, Optuna's RDB storage) whose trials are jobs. `spec` holds the request and what the driver
    needs; `trials` and `best` are the table and best trial as of the last step; one driver step at a time
    holds `step_owner` until `step_expires_at` (`step_again`: another step was asked for meanwhile);
    `dispatched_at` is the reconciler's send token, `stepped_at` the end of the last step."""

    __tablename__ = "tuning_studies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_tuning_studies_tenant_idempotency_key"),
        Index("ix_tuning_studies_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_tuning_studies_status", "status"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16))  # core.tuning.status.TuningStatus
    trials: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    best: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    step_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    step_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    step_again: Mapped[bool] = mapped_column(Boolean, default=False)
    stepped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, onupdate=now)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


__all__ += ["TuningStudy"]
