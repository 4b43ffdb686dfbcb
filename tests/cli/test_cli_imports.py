"""The arrows between the entry points: `cli/` imports `core/` and `migrations/` (never `api/` or
`worker/`, which it runs as processes by module name), does no HTTP of its own (only through
`core.client`), and `core/` never imports `cli/`."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[Path, set[str]]:
    found: dict[Path, set[str]] = {}
    for path in (REPO / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[path] = names
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def test_cli_imports_core_and_migrations_only():
    for path, names in _imports("cli").items():
        tops = {_top(n) for n in names}
        assert not tops & {"api", "worker"}, (path, names)
        assert not tops & {"httpx", "requests", "urllib3"}, (path, names)  # HTTP goes through core.client


def test_core_never_imports_the_entry_points():
    for path, names in _imports("core").items():
        assert not {_top(n) for n in names} & {"api", "worker", "cli", "migrations"}, (path, names)
