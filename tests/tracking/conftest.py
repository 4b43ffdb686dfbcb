"""Fixtures of the experiment-tracking tests, reused from the other suites rather than copied:

- `stack_factory` (the API, the database and real `celery worker` subprocesses) from
  `tests/worker/conftest.py` (`from worker_testlib import ...`).

Added here: `mlflow_server`, one real `mlflow server` process for the whole session (`mlflow_server.py`:
SQLite backend store, local artifacts served over HTTP, 127.0.0.1 on a free port).
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
from mlflow_server import MlflowServer

_worker = load_module("_simtrain_tracking_worker_fixtures", TESTS / "worker" / "conftest.py")
stack_factory = _worker.stack_factory
pytest_runtest_makereport = _worker.pytest_runtest_makereport  # the stack prints worker logs on failure


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
        yield server
