"""Fixtures of the webhook tests, reused from the other suites rather than copied:

- `make_service` / `embedded` (the app on the embedded default, two tenants with keys) from
  `tests/api/conftest.py`;
- `stack_factory` (the API, the database and real `celery worker` subprocesses) from
  `tests/worker/conftest.py` (`from worker_testlib import ...`).

Added here: `receiver` (a real HTTP receiver on 127.0.0.1, `receiver.py`) and `hooks_service` (the
embedded app with the loopback receiver opened by `SIMTRAIN_FETCH_ALLOW=127.0.0.1/32`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS, TESTS / "worker", Path(__file__).resolve().parent):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixture_loader import load_module
from receiver import Receiver

_api = load_module("_simtrain_webhooks_api_fixtures", TESTS / "api" / "conftest.py")
make_service = _api.make_service
embedded = _api.embedded

_worker = load_module("_simtrain_webhooks_worker_fixtures", TESTS / "worker" / "conftest.py")
stack_factory = _worker.stack_factory
pytest_runtest_makereport = _worker.pytest_runtest_makereport  # the stack prints worker logs on failure

LOOPBACK = "127.0.0.1/32"


@pytest.fixture
def receiver():
    with Receiver() as rx:
        yield rx


@pytest.fixture
def hooks_service(make_service):
    """The embedded app, the loopback receiver allowed, quick retries and short bounds."""
    return make_service(
        "sqlite",
        fetch_allow=LOOPBACK,
        webhook_backoff_s=2.5,
        webhook_timeout_s=1.5,
        webhook_connect_timeout_s=1,
    )
