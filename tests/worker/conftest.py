"""Fixtures for the worker tests: real services, real `celery worker` subprocesses, the real API.

    def test_x(stack_factory):
        stack = stack_factory("postgres", lease_seconds=3)      # or "sqlite" (the embedded default)
        worker = stack.start_worker()                             # celery -A worker.app:celery_app worker ...
        job_id = stack.submit({...})                              # POST /v1/jobs through api.main:create_app
        job = stack.wait_status(job_id, "succeeded")

Every worker runs `python -m celery -A worker.app:celery_app worker -Q <queue> -c 1 --pool solo` in a new
process group with the stack's environment; its output goes to a log file (printed when a test fails).
Teardown stops it with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_testlib import REPO, RedisServer, Stack


@pytest.fixture
def stack_factory(request, simtrain_env, tmp_path) -> Iterator[Any]:
    """`stack_factory(kind, broker_url=None, **settings)`: kind is "postgres" (PostgreSQL + Redis) or "sqlite"."""
    from migrations import upgrade_head

    stacks: list[Stack] = []

    def make(kind: str = "postgres", broker_url: str | None = None, **values: Any) -> Stack:
        home = tmp_path / "home"
        settings_values: dict[str, Any] = {
            "home": home,
            "storage_url": tmp_path / "storage",
            "queue": f"simtrain-test-{uuid.uuid4().hex[:8]}",
            "device": "cpu",
        }
        if kind == "postgres":
            settings_values["database_url"] = request.getfixturevalue("pg_database")
            settings_values["broker_url"] = broker_url or request.getfixturevalue("redis_url")
        elif kind != "sqlite":
            raise ValueError(kind)
        settings_values.update(values)
        settings = simtrain_env(**settings_values)
        upgrade_head(settings.database_url)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env.setdefault("OMP_NUM_THREADS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        stack = Stack(settings, env, tmp_path)
        stacks.append(stack)
        return stack

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for stack in stacks:
        if failed:
            print(stack.logs())
        stack.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
