"""Service settings, read from the environment (prefix `SIMTRAIN_`) and validated by pydantic-settings.

`DATABASE_URL` and `BROKER_URL` are also read without the prefix. With nothing set, everything lives under
`SIMTRAIN_HOME` (default `~/.simtrain`): a SQLite database, a broker that needs no server (kombu's
SQLAlchemy transport on a second SQLite file) and a local artifact directory: the embedded default.

    from core.settings import get_settings
    settings = get_settings()
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

MiB = 1024 * 1024
GiB = 1024 * MiB


class Settings(BaseSettings):
    """Every field is `SIMTRAIN_<NAME>` in the environment (README.md, "Configuration", lists them).

    Fetching user-given URLs (`core.fetch`):
    `fetch_allow` (`SIMTRAIN_FETCH_ALLOW`): comma-separated entries that open more than the default
    (https, http and s3 to public addresses): the `file` scheme, CIDRs or addresses (`10.0.0.0/8`,
    `127.0.0.1/32`) and hosts or `*.suffix` names whose loopback / private / link-local / ... addresses
    become reachable; a bad entry (`10.0.0.0/33`) fails validation naming it.
    `fetch_timeout_s`: one deadline for a whole download; `fetch_max_bytes`: its size bound (0, the
    default: `max_upload_bytes`); `fetch_max_redirects`: hops followed, each checked again.
    `s3_endpoint_url`: an S3-compatible server (`http://minio:9000`) for s3:// URLs, its addresses checked
    like any URL's; credentials come from the usual AWS variables (`AWS_ACCESS_KEY_ID`, ...).
    `import_wait_s`: how long a job waits for its dataset's import (a dataset given by URI).

    Datasets of real size: `max_upload_bytes` bounds each uploaded file (streamed to disk, never held in
    memory); converting it runs under `upload_timeout_s` instead of `request_timeout_s`;
    `max_dataset_samples` bounds its samples, `max_image_pixels` each image before resizing (uploads and
    predictions). Predictions with images: at most `max_predict_images` files and `max_predict_bytes` for
    the whole body. Workers on remote storage (s3://) memory-map datasets from a local copy in
    `dataset_cache_dir` (default `<home>/cache/datasets`), at most `dataset_cache_bytes` in all.
    """

    model_config = SettingsConfigDict(env_prefix="SIMTRAIN_", extra="ignore")

    home: Path = Field(default=Path("~/.simtrain"))
    database_url: str = Field(
        default="", validation_alias=AliasChoices("SIMTRAIN_DATABASE_URL", "DATABASE_URL")
    )
    broker_url: str = Field(default="", validation_alias=AliasChoices("SIMTRAIN_BROKER_URL", "BROKER_URL"))
    storage_url: str = ""
    queue: str = Field(default="simtrain", min_length=1, max_length=64)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    # the worker's kind (core.routing): which device queue it consumes; auto: gpu when CUDA is available
    worker_device: str = Field(default="auto", pattern=r"^(auto|cpu|gpu)$")

    # request and upload bounds
    max_upload_bytes: int = Field(default=10 * GiB, ge=1024)
    max_json_bytes: int = Field(default=8 * MiB, ge=1024)
    max_epochs: int = Field(default=1000, ge=1, le=100_000)
    max_predict_rows: int = Field(default=1024, ge=1)
    request_timeout_s: float = Field(default=30.0, ge=0, le=3600)  # no answer by then: 503 (0: off)
    api_preload: bool = False  # import torch & co. after start-up, not on the first job (api.preload)

    # datasets of real size (uploads, their processing, the local cache) and image predictions
    upload_timeout_s: float = Field(default=3600.0, ge=0, le=86_400)  # converting an upload (0: off)
    max_dataset_samples: int = Field(default=2_000_000, ge=1)
    max_image_pixels: int = Field(default=4096 * 4096, ge=64)  # per image, before resizing
    max_predict_images: int = Field(default=64, ge=1)
    max_predict_bytes: int = Field(default=32 * MiB, ge=1024)  # a predict body (images)
    dataset_cache_dir: Path | None = None  # default: <home>/cache/datasets
    dataset_cache_bytes: int = Field(default=20 * GiB, ge=1)

    # execution guard
    lease_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    visibility_timeout: int = Field(default=3600, ge=1)
    reconcile_seconds: float = Field(default=30.0, gt=0)
    requeue_after_seconds: float = Field(default=120.0, gt=0)

    # per-tenant quotas
    max_active_jobs_per_tenant: int = Field(default=100, ge=1)
    max_stored_bytes_per_tenant: int = Field(default=2048 * MiB, ge=1)

    # training data (core.training.feed): features up to train_data_budget_bytes stay on the device, larger
    # sets stream through train_loader_workers DataLoader processes (0: one per core but one, at most 8)
    train_data_budget_bytes: int = Field(default=2048 * MiB, ge=0)
    train_loader_workers: int = Field(default=0, ge=0, le=64)

    # uploaded warm-start weights (POST /v1/weights): the largest safetensors file accepted
    max_weights_bytes: int = Field(default=2048 * MiB, ge=1024)

    # fetching user-given URLs (core.fetch): allow-list and bounds
    fetch_allow: Annotated[tuple[str, ...], NoDecode] = ()
    fetch_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    fetch_max_bytes: int = Field(default=0, ge=0)  # 0: max_upload_bytes
    fetch_max_redirects: int = Field(default=5, ge=0, le=20)
    s3_endpoint_url: str = ""
    # datasets given by URI (core.dataset_import): a job whose dataset is still importing waits this long
    # at most (from its creation), then fails naming `dataset`
    import_wait_s: float = Field(default=3600.0, gt=0, le=7 * 86_400)

    # webhooks (core.webhooks): one attempt is bounded by webhook_timeout_s (name lookup, connect, send and
    # the answer together; connect alone by webhook_connect_timeout_s); a failed attempt is tried again
    # after webhook_backoff_s * 2**(n-1) (with jitter, at most webhook_backoff_max_s), webhook_max_attempts
    # times in all; deliveries go to webhook_queue (empty: the training queue)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_s: float = Field(default=10.0, gt=0, le=3600)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0, le=86400)
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=300)
    webhook_connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_queue: str = Field(default="", max_length=64)
    max_webhooks_per_tenant: int = Field(default=20, ge=1, le=1000)

    # experiment tracking (core.tracking): every job is a run on this MLflow tracking server (empty: off);
    # MLflow's own MLFLOW_* variables (credentials, MLFLOW_HTTP_REQUEST_TIMEOUT, ...) apply to its calls
    mlflow_tracking_uri: str = Field(default="", max_length=2000)

    @field_validator("home")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("fetch_allow", mode="before")
    @classmethod
    def _parse_fetch_allow(cls, v: object) -> tuple[str, ...]:
        from core.fetch.allowlist import normalize_entries

        entries = v.split(",") if isinstance(v, str) else v
        if not isinstance(entries, (list, tuple, set, frozenset)):
            raise ValueError("a comma-separated list of schemes, CIDRs and hosts")
        return normalize_entries(entries)

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_s3_endpoint(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v:
            return v
        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises ValueError when out of range
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise ValueError("an http(s)://host[:port] URL without credentials (those: AWS_* variables)")
        return v

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _check_mlflow_uri(cls, v: str) -> str:
        from core.tracking.uri import check_tracking_uri

        return check_tracking_uri(v)

    @model_validator(mode="after")
    def _fetch_defaults(self) -> Settings:
        if not self.fetch_max_bytes:
            self.fetch_max_bytes = self.max_upload_bytes
        return self

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'simtrain.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.db'}"
        if not self.storage_url:
            self.storage_url = str(self.home / "artifacts")
        if self.dataset_cache_dir is None:
            self.dataset_cache_dir = self.home / "cache" / "datasets"
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, validated once. Tests call `get_settings.cache_clear()` after changing env."""
    return Settings()
