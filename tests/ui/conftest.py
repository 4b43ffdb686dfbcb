"""Fixtures of the console tests (`tests/ui/`): the browser from `tests/browser.py` (`browser`, `new_tab`)
and `console`, one real stack for the whole module: the app under uvicorn on a free port
(`tests/live_server.py`), migrated SQLite with kombu's SQLAlchemy broker (the embedded default), one real
`celery worker` subprocess (`tests/worker/worker_testlib.py`'s `Stack`), and two tenants.

    def test_x(console, new_tab):
        job_id = console.submit(job_body(epochs=3))          # POST /v1/jobs as tenant A
        tab = new_tab(); sign_in(tab, console.base, console.key_a)

The stack is module-scoped (one worker start for all of a module's tests), so it sets the settings'
environment itself, as `tests/conftest.py`'s `simtrain_env` does for one test.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS, TESTS / "worker"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from browser import browser, new_tab  # noqa: F401 - the page tests' fixtures
from worker_testlib import Stack

from tests.live_server import live_server

SETTINGS_VARS = (
    "DATABASE_URL",
    "BROKER_URL",
    "SIMTRAIN_DATABASE_URL",
    "SIMTRAIN_BROKER_URL",
    "SIMTRAIN_STORAGE_URL",
)


@dataclass
class Console:
    stack: Stack
    base: str
    key_a: str
    key_b: str

    def submit(self, body: dict, key: str | None = None) -> str:
        headers = {"Authorization": f"Bearer {key or self.key_a}"}
        r = self.stack.client.post("/v1/jobs", json=body, headers=headers)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.stack.get(job_id)

    def new_tenant(self, name: str) -> str:
        from core.auth import create_api_key

        with self.stack.Session() as s:
            return create_api_key(s, f"{name}-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def console(request, tmp_path_factory) -> Iterator[Console]:
    from core.settings import get_settings
    from migrations import upgrade_head

    tmp = tmp_path_factory.mktemp("console")
    with pytest.MonkeyPatch.context() as mp:
        for var in SETTINGS_VARS:
            mp.delenv(var, raising=False)
        values = {"home": tmp / "home", "storage_url": tmp / "storage", "device": "cpu",
                  "queue": f"simtrain-ui-{uuid.uuid4().hex[:8]}"}  # fmt: skip
        for key, value in values.items():
            mp.setenv(f"SIMTRAIN_{key.upper()}", str(value))
        get_settings.cache_clear()
        settings = get_settings()
        settings.ensure_home()
        upgrade_head(settings.database_url)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        stack = Stack(settings, env, tmp)
        try:
            stack.start_worker()
            with live_server(stack.app) as base:
                key_a = stack.headers["Authorization"].split()[1]
                console = Console(stack, base, key_a, "")
                console.key_b = console.new_tenant("tenant-b")
                yield console
                if request.session.testsfailed:
                    print(stack.logs())  # the worker's side of a failure
        finally:
            stack.close()
            get_settings.cache_clear()
