"""Fixtures of the tuning tests, reused from the other suites rather than copied:

- `stack_factory` (real `celery worker` subprocesses + the real API) from `tests/worker/conftest.py`;
- `make_service` / `embedded` / `service` (the app with two tenants) from `tests/api/conftest.py`.

`tuning_body(**changes)` is the study most tests start from: a tiny MLP on `builtin:digits`, two
epochs, the learning rate searched on a log scale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS, TESTS / "worker"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixture_loader import load_module

_worker_fixtures = load_module("_simtrain_tuning_worker_fixtures", TESTS / "worker" / "conftest.py")
_api_fixtures = load_module("_simtrain_tuning_api_fixtures", TESTS / "api" / "conftest.py")

stack_factory = _worker_fixtures.stack_factory
pytest_runtest_makereport = _worker_fixtures.pytest_runtest_makereport  # logs of failed worker tests
make_service = _api_fixtures.make_service
embedded = _api_fixtures.embedded
service = _api_fixtures.service


def body(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "dataset": "builtin:digits",
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 2, "batch_size": 128},
        "search_space": {"training.learning_rate": {"type": "float", "low": 1e-4, "high": 0.3, "log": True}},
        "objective": {"metric": "accuracy", "direction": "maximize"},
        "trials": 4,
        "parallel": 2,
        "seed": 11,
    }
    return out | changes


@pytest.fixture
def tuning_body():
    return body
