"""Fixtures of the dataset-reference tests (datasets given by URI, imported by the worker).

Reused rather than copied:

- from `tests/api/conftest.py`: `make_service` / `embedded` (the app on the embedded default, two tenants);
- from `tests/worker/conftest.py`: `stack_factory` (the API, the database and real `celery worker`
  subprocesses);
- from `tests/s3server.py`: `s3_server` (moto's S3 server in its own process), `s3_credentials`.

Added here: `http_files` and `https_files`, a local file server on 127.0.0.1 (`refservers.FileServer`; the
https one with a throwaway CA, `tls` its trust material). Helpers the tests import are in `reftestlib.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
REPO = TESTS.parent
for path in (REPO, TESTS, TESTS / "worker", HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixture_loader import load_module
from refservers import FileServer, Tls, make_tls

from tests.s3server import make_bucket, s3_credentials, s3_server  # noqa: F401 - fixtures

_api = load_module("_simtrain_datasets_api_fixtures", TESTS / "api" / "conftest.py")
make_service = _api.make_service
embedded = _api.embedded

_worker = load_module("_simtrain_datasets_worker_fixtures", TESTS / "worker" / "conftest.py")
stack_factory = _worker.stack_factory
pytest_runtest_makereport = _worker.pytest_runtest_makereport  # the stack prints worker logs on failure


@pytest.fixture
def http_files() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def tls(tmp_path) -> Tls:
    directory = tmp_path / "tls"
    directory.mkdir()
    return make_tls(directory)


@pytest.fixture
def https_files(tls) -> Iterator[FileServer]:
    server = FileServer(tls)
    yield server
    server.close()
