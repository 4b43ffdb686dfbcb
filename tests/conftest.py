"""Shared fixtures: the real PostgreSQL and Redis (no mocks), and an isolated simtrain home per test.

PostgreSQL: `SIMTRAIN_TEST_PG` (default postgresql://postgres@127.0.0.1:5432/test); each test session
creates its own database and drops it at the end. Redis: `SIMTRAIN_TEST_REDIS` (default
redis://127.0.0.1:6379), on a database number of its own, flushed first. A service that cannot be reached
fails the tests that need it: it never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("SIMTRAIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_BASE_URL = os.environ.get("SIMTRAIN_TEST_REDIS", "redis://127.0.0.1:6379")


def _pg_admin_engine():
    import sqlalchemy as sa

    url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the real PostgreSQL server; fails (never skips) when it cannot be reached."""
    import sqlalchemy as sa

    try:
        with _pg_admin_engine().connect() as c:
            c.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_database(pg_server) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (dropped afterwards)."""
    import sqlalchemy as sa

    name = f"simtrain_t_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin_engine()
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = pg_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_server() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_BASE_URL, socket_connect_timeout=3).ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"Redis at {REDIS_BASE_URL} is not reachable: {exc}")
    return REDIS_BASE_URL


_redis_db_counter = iter(range(1, 16))


@pytest.fixture
def redis_url(redis_server) -> Iterator[str]:
    """A flushed Redis database number of its own for one test."""
    import redis

    db = next(_redis_db_counter, None)
    if db is None:  # more than 15 Redis tests in one session: reuse from 1 after flushing
        db = 1 + uuid.uuid4().int % 15
    url = f"{redis_server}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def simtrain_env(tmp_path, monkeypatch):
    """Point the settings at a private home (embedded default); returns a function to override values."""
    from core.settings import get_settings

    home = tmp_path / "home"
    monkeypatch.setenv("SIMTRAIN_HOME", str(home))
    for var in ("DATABASE_URL", "BROKER_URL", "SIMTRAIN_DATABASE_URL", "SIMTRAIN_BROKER_URL", "SIMTRAIN_STORAGE_URL"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()

    def configure(**values: str):
        for key, value in values.items():
            monkeypatch.setenv(f"SIMTRAIN_{key.upper()}", str(value))
        get_settings.cache_clear()
        settings = get_settings()
        settings.ensure_home()
        return settings

    yield configure
    get_settings.cache_clear()
