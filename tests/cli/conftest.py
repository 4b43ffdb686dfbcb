"""Fixtures of the CLI tests, reused from tests/api/conftest.py rather than copied: `embedded` (the app on
the embedded default with two tenants), `make_service`, `trained_artifacts`, `finish_with_artifacts`;
and `live` (that app served by a real uvicorn on 127.0.0.1, see tests/live_server.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
for path in (REPO, TESTS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from fixture_loader import load_module

_api_fixtures = load_module("_simtrain_cli_api_fixtures", TESTS / "api" / "conftest.py")

make_service = _api_fixtures.make_service
embedded = _api_fixtures.embedded
trained_artifacts = _api_fixtures.trained_artifacts
finish_with_artifacts = _api_fixtures.finish_with_artifacts


@pytest.fixture
def live(embedded):
    """(base URL, service): the embedded app behind a real HTTP server."""
    from tests.live_server import live_server

    with live_server(embedded.app) as url:
        yield url, embedded
