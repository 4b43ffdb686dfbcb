"""The package layering of docs/architecture.md, checked on every import statement (module level and inside
functions): core imports no entry point and not migrations; migrations imports core only; api, worker and cli
never import each other; and no two modules of the project import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "migrations", "api", "worker", "cli")
ALLOWED = {
    "core": {"core"},
    "migrations": {"migrations", "core"},
    "api": {"api", "core", "migrations"},
    "worker": {"worker", "core", "migrations"},
    "cli": {"cli", "core", "migrations"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Project modules named by the file's imports (absolute and relative)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if "versions" not in p.parts]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_layering_allows(package):
    bad = {
        (module, target)
        for module, targets in _graph().items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in ALLOWED[package]
    }
    assert not bad, f"{package} imports across the layering: {sorted(bad)}"


def test_no_import_cycles_between_modules():
    graph = _graph()
    # a package __init__ importing its own submodules is how a package exposes its API, not a cycle
    edges = {m: {t for t in ts if not (m.count(".") < t.count(".") and t.startswith(m + "."))} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_the_checker_sees_a_violation(tmp_path):
    """The parser finds the imports it is meant to find (so the tests above can fail)."""
    path = REPO / "core" / "status.py"
    assert _imports(path) == set()
    assert "core.db.models" in _imports(REPO / "core" / "db" / "jobs.py")
    assert "migrations" not in {t.split(".")[0] for t in _graph()["core.db.session"]}
