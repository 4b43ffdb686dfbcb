"""Fixtures of the comparison tests, reused from the other suites rather than copied:

- `stack_factory` (real `celery worker` subprocesses + the real API) from `tests/worker/conftest.py`;
- `make_service` / `embedded` / `service` (the app on the embedded default with two tenants) from `tests/api/conftest.py`;
- `browser` / `new_tab` (headless Chromium under Playwright) from `tests/browser.py`.

The two conftest files are loaded under private module names (they are not importable packages).
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from browser import browser, new_tab  # noqa: F401 - the page tests' fixtures
from fixture_loader import load_module

_worker_fixtures = load_module("_simtrain_compare_worker_fixtures", TESTS / "worker" / "conftest.py")
_api_fixtures = load_module("_simtrain_compare_api_fixtures", TESTS / "api" / "conftest.py")

stack_factory = _worker_fixtures.stack_factory
pytest_runtest_makereport = _worker_fixtures.pytest_runtest_makereport  # logs of failed worker tests
make_service = _api_fixtures.make_service
embedded = _api_fixtures.embedded
service = _api_fixtures.service
