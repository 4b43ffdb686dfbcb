"""Fixtures for the API tests: a real app on the embedded default (SQLite + kombu's SQLAlchemy broker) or
on the real PostgreSQL + Redis, migrated with Alembic, a TestClient and two tenants with API keys.

    def test_x(service):            # parametrised: sqlite and postgres
        r = service.client.get("/v1/jobs", headers=service.auth_a)

    def test_y(embedded):           # the embedded default only (most tests: fast)
    def test_z(make_service):       # make_service(backend="sqlite", max_upload_bytes=2048)
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the repository root, when the package is not installed
    sys.path.insert(0, str(ROOT))

SIMPLE_JOB: dict[str, Any] = {
    "dataset": "builtin:digits",
    "loss": {"kind": "cross_entropy"},
    "training": {"epochs": 2},
}


@dataclass
class Service:
    backend: str
    settings: Any
    app: Any
    client: Any
    sessionmaker: Any
    storage: Any
    key_a: str
    key_b: str
    tenant_a: str
    tenant_b: str
    redis_url: str | None = None
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def auth_a(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_a}"}

    @property
    def auth_b(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key_b}"}

    def queued_messages(self) -> int:
        """How many task messages wait in the broker's queue (Redis list / kombu message table)."""
        url = self.settings.broker_url
        if url.startswith("redis://"):
            import redis

            from core.routing import redis_lists

            client = redis.Redis.from_url(url)
            try:  # one list per priority step (core.routing)
                return sum(int(client.llen(key)) for key in redis_lists(self.settings.queue))
            finally:
                client.close()
        import sqlalchemy as sa

        engine = sa.create_engine(url[len("sqla+") :])
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table("kombu_message"):
                    return 0
                return int(conn.execute(sa.text("SELECT count(*) FROM kombu_message")).scalar_one())
        finally:
            engine.dispose()

    def create_job(self, body: dict | None = None, key: str | None = None, **headers: str) -> dict:
        r = self.client.post(
            "/v1/jobs",
            json=body or SIMPLE_JOB,
            headers={"Authorization": f"Bearer {key or self.key_a}", **headers},
        )
        assert r.status_code == 201, r.text
        return r.json()


def _build(
    simtrain_env, backend: str, pg_url: str | None, redis_url: str | None, **overrides: Any
) -> Service:
    from fastapi.testclient import TestClient

    from api.main import create_app
    from core.auth import create_api_key
    from core.db import make_sessionmaker
    from migrations import upgrade_head

    values: dict[str, Any] = {}
    if backend == "postgres":
        values |= {"database_url": pg_url, "broker_url": redis_url}
    values |= overrides
    settings = simtrain_env(**values)
    upgrade_head(settings.database_url)
    app = create_app(settings)
    client = TestClient(app)
    client.__enter__()
    factory = make_sessionmaker(app.state.engine)
    with factory() as s:
        key_a = create_api_key(s, "tenant-a")
        key_b = create_api_key(s, "tenant-b")
    from core.auth import resolve_api_key

    with factory() as s:
        tenant_a, tenant_b = resolve_api_key(s, key_a), resolve_api_key(s, key_b)
    svc = Service(
        backend=backend,
        settings=settings,
        app=app,
        client=client,
        sessionmaker=factory,
        storage=app.state.storage,
        key_a=key_a,
        key_b=key_b,
        tenant_a=tenant_a,
        tenant_b=tenant_b,
        redis_url=redis_url,
    )
    svc._closers.append(lambda: client.__exit__(None, None, None))
    return svc


@pytest.fixture
def make_service(request, simtrain_env) -> Iterator[Callable[..., Service]]:
    """Build a service: `make_service(backend="sqlite"|"postgres", **settings overrides)`."""
    made: list[Service] = []

    def make(backend: str = "sqlite", **overrides: Any) -> Service:
        pg_url = redis_url = None
        if backend == "postgres":
            pg_url = request.getfixturevalue("pg_database")
            redis_url = request.getfixturevalue("redis_url")
        svc = _build(simtrain_env, backend, pg_url, redis_url, **overrides)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        for close in svc._closers:
            close()


@pytest.fixture(params=["sqlite", "postgres"])
def service(request, make_service) -> Service:
    """The app on the embedded default and on PostgreSQL + Redis."""
    return make_service(request.param)


@pytest.fixture
def embedded(make_service) -> Service:
    """The app on the embedded default only (SQLite + the SQLAlchemy broker)."""
    return make_service("sqlite")


TRAINED_CLASSES = ["0", "1", "2"]


@pytest.fixture(scope="session")
def trained_artifacts(tmp_path_factory):
    """A tiny model trained on three digit classes, its artifacts written by core.artifacts (once)."""
    from core.artifacts import write_artifacts
    from core.data import load_builtin, select_classes
    from core.training import TrainPlan, train

    ds = select_classes(load_builtin("digits"), TRAINED_CLASSES)
    plan = TrainPlan(
        dataset=ds,
        similarity_spec={"kind": "ordinal"},
        loss_spec={"kind": "simloss"},
        model_spec={"kind": "linear"},
        training={"epochs": 2, "seed": 0, "batch_size": 128},
        device="cpu",
    )
    result = train(plan)
    out = tmp_path_factory.mktemp("artifacts")
    paths = write_artifacts(result, out)
    return {"dir": out, "paths": paths, "result": result, "dataset": ds}


@pytest.fixture
def finish_with_artifacts():
    """`finish_with_artifacts(service, job_id, trained_artifacts)`: succeed a job with real artifacts."""
    return _finish_with_artifacts


def _finish_with_artifacts(svc: Service, job_id: str, artifacts: dict) -> None:
    """Play the worker: claim the job, store its artifacts with rows, and finish it as succeeded."""
    import hashlib
    import mimetypes

    from core.db import jobs as jobstate
    from core.db.models import JobStatus

    with svc.sessionmaker() as s:
        assert jobstate.claim(s, job_id, "test-worker", 60) == jobstate.ClaimOutcome.claimed
        for path in artifacts["paths"]:
            data = path.read_bytes()
            key = f"jobs/{job_id}/artifacts/{path.name}"
            svc.storage.put_bytes(key, data)
            jobstate.record_artifact(
                s,
                job_id,
                path.name,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                storage_key=key,
            )
        s.commit()
        result = artifacts["result"]
        assert jobstate.finish(
            s,
            job_id,
            "test-worker",
            JobStatus.succeeded,
            final_metrics={"accuracy": float(result.final_metrics["accuracy"])},
            train_seconds=result.train_seconds,
            device="cpu",
        )
