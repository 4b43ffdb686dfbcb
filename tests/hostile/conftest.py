"""Fixtures of the hostile-input and outage tests.

Reused rather than copied: `make_service` / `embedded` / `service` (the app on the embedded default, or on
the real PostgreSQL + Redis, migrated, with two tenants and their keys) from `tests/api/conftest.py`.

Added here, all on loopback and stopped in teardown:

- `private_pg`: a PostgreSQL server of this test's own (`initdb` into a temporary directory, `pg_ctl` on a
  free port), that the test may stop and start again. The shared server is never touched.
- `api_server`: `uvicorn --factory api.main:create_app` as a subprocess with the given settings, with its
  peak RSS readable from /proc (`server.peak_rss_mb()`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS, Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixture_loader import load_module
from hostile_testlib import PG_BIN, ApiServer, PrivatePostgres, clean_env

_api_fixtures = load_module("_simtrain_hostile_api_fixtures", TESTS / "api" / "conftest.py")
make_service = _api_fixtures.make_service
embedded = _api_fixtures.embedded
service = _api_fixtures.service
trained_artifacts = _api_fixtures.trained_artifacts
finish_with_artifacts = _api_fixtures.finish_with_artifacts


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN} (set SIMTRAIN_PG_BIN)")
    server = PrivatePostgres().init().start()
    try:
        yield server
    finally:
        server.close()


# ------------------------------------------------------------------------------------------ API subprocess


@pytest.fixture
def api_server(tmp_path) -> Iterator[Any]:
    """`api_server(env=None, **settings)`: migrate the database the settings name (default: the embedded
    SQLite under a private home), then start the API on it; `env` adds other environment variables."""
    servers: list[ApiServer] = []

    def start(env: dict[str, str] | None = None, **values: Any) -> ApiServer:
        from migrations import upgrade_head

        home = Path(values.setdefault("home", tmp_path / "home")).resolve()
        home.mkdir(parents=True, exist_ok=True)
        database_url = str(values.get("database_url") or f"sqlite:///{home / 'simtrain.db'}")
        upgrade_head(database_url)
        server = ApiServer({**clean_env(**values), **(env or {})}, tmp_path / f"api-{len(servers)}.log")
        server.database_url = database_url
        server.home = home
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()
