"""Fixtures of the storage, uploaded-weights and warm-start tests.

Reused rather than copied:

- from `tests/api/conftest.py`: `make_service` / `embedded` / `service` (the app on the embedded default or
  on the real PostgreSQL + Redis, two tenants with keys), `trained_artifacts`, `finish_with_artifacts`;
- from `tests/worker/conftest.py`: `stack_factory` (the API, the database and real `celery worker`
  subprocesses; `from worker_testlib import job_body`);
- from `tests/s3server.py`: `s3_server` (a moto S3 server in its own process), `s3_credentials`.

Added here: `s3_storage_url` (a fresh bucket on the test server, as an `s3://bucket/prefix` URL). Helpers
the tests import are in `storage_testlib.py`.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS, TESTS / "worker"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixture_loader import load_module

from tests.s3server import make_bucket, s3_credentials, s3_server  # noqa: F401 - fixtures

_api = load_module("_simtrain_storage_api_fixtures", TESTS / "api" / "conftest.py")
make_service = _api.make_service
embedded = _api.embedded
service = _api.service
trained_artifacts = _api.trained_artifacts
finish_with_artifacts = _api.finish_with_artifacts

_worker = load_module("_simtrain_storage_worker_fixtures", TESTS / "worker" / "conftest.py")
stack_factory = _worker.stack_factory
pytest_runtest_makereport = _worker.pytest_runtest_makereport  # the stack prints worker logs on failure


@pytest.fixture
def s3_storage_url(s3_server, s3_credentials) -> str:  # noqa: F811 - the fixtures imported above
    """`s3://<new bucket>/simtrain` on the test server, with the credentials and endpoint in the env."""
    bucket = f"simtrain-{uuid.uuid4().hex[:12]}"
    make_bucket(s3_server, bucket)
    return f"s3://{bucket}/simtrain"
