"""Fixtures of the comparison tests, reused from the other suites rather than copied:

- `stack_factory` (real `celery worker` subprocesses + the real API) from `tests/worker/conftest.py`;
- `make_service` / `embedded` / `service` (the app on the embedded default with two tenants) from `tests/api/conftest.py`.

The two conftest files are loaded under private module names (they are not importable packages).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _load(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_worker_fixtures = _load("_simtrain_compare_worker_fixtures", TESTS / "worker" / "conftest.py")
_api_fixtures = _load("_simtrain_compare_api_fixtures", TESTS / "api" / "conftest.py")

stack_factory = _worker_fixtures.stack_factory
pytest_runtest_makereport = _worker_fixtures.pytest_runtest_makereport  # logs of failed worker tests
make_service = _api_fixtures.make_service
embedded = _api_fixtures.embedded
service = _api_fixtures.service
