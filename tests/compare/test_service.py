"""core.compare.service: the status a comparison derives from its children, the public fields it answers,
the keyset pages of a tenant's comparisons; and core.compare.report stays pure (it reads nothing)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.compare import service
from core.compare.spec import seed_of
from core.status import ComparisonStatus

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("stored", "children", "expected"),
    [
        ("running", [], "running"),  # no children yet: as stored
        ("running", [("succeeded", 2, 2), ("running", 1, 2)], "running"),
        ("running", [("succeeded", 2, 2), ("succeeded", 2, 2)], "succeeded"),
        ("running", [("succeeded", 2, 2), ("failed", 1, 2)], "partial"),
        ("running", [("failed", 0, 2), ("cancelled", 0, 2)], "failed"),
        ("cancelling", [("succeeded", 2, 2), ("cancelled", 0, 2)], "cancelled"),
        ("cancelling", [("queued", 0, 2)], "cancelling"),
        ("partial", [("succeeded", 2, 2)], "partial"),  # finalised: never derived again
    ],
)
def test_derived_status(stored, children, expected):
    got = service.derived_status(stored, service.progress(children))
    assert got == expected and got in set(ComparisonStatus)


def test_progress_counts_and_fraction():
    p = service.progress([("succeeded", 1, 4), ("running", 2, 4), ("queued", 0, 4), ("failed", 1, 4)])
    assert (p.total, p.succeeded, p.running, p.queued, p.failed, p.cancelled) == (4, 1, 1, 1, 1, 0)
    assert p.fraction == pytest.approx((4 + 2 + 0 + 4) / 16)  # an ended child counts all its epochs
    assert service.ACTIVE == ("running", "cancelling")


def _job(variant: str, seed: int, status: str = "succeeded", **kw):
    fields = {
        "id": f"{variant}-{seed}",
        "variant": variant,
        "spec": {"training": {"seed": seed}},
        "status": status,
        "epoch": 2,
        "epochs": 2,
        "final_metrics": {"accuracy": 0.9, "mistake_severity": 0.2, "nll": 0.3, "confusion_matrix": [[1]]},
        "error_code": None,
        "error_message": None,
    }
    return SimpleNamespace(**(fields | kw))


def test_detail_orders_children_by_seed_then_variant_with_headline_metrics_only():
    comp = SimpleNamespace(
        id="c1",
        status="running",
        spec={
            "dataset": "builtin:digits",
            "classes": ["0", "1"],
            "variants": [{"name": "baseline", "loss": {}}, {"name": "simloss", "loss": {}}],
            "seed_values": [4, 5],
            "request": {"metadata": {"k": "v"}},
        },
        report=None,
        idempotency_key=None,
        created_at=None,
        updated_at=None,
        finished_at=None,
    )
    kids = [
        _job("simloss", 5),
        _job("baseline", 5, "failed", error_code="training_failed", error_message="boom"),
        _job("simloss", 4),
        _job("baseline", 4),
    ]
    d = service.detail(comp, kids)
    assert [(c["seed"], c["variant"]) for c in d["children"]] == [
        (4, "baseline"), (4, "simloss"), (5, "baseline"), (5, "simloss"),
    ]  # fmt: skip
    assert d["children"][0]["metrics"] == {"accuracy": 0.9, "mistake_severity": 0.2}
    assert d["children"][2]["metrics"] is None
    assert d["children"][2]["error"] == {"code": "training_failed", "message": "boom"}
    assert d["status"] == "partial" and d["progress"]["total"] == 4 and d["metadata"] == {"k": "v"}


def test_seed_of_a_stored_spec():
    assert seed_of({"training": {"seed": 7}}) == 7
    assert seed_of({"training": {}}) == seed_of(None) == 0


def test_report_module_reads_nothing():
    tree = ast.parse((ROOT / "core/compare/report.py").read_text())
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert not {m for m in imported if m and (m.startswith(("sqlalchemy", "core.db")) or m == "io")}, imported


def test_comparisons_list_in_keyset_pages(embedded):
    body = {
        "dataset": "builtin:digits",
        "classes": ["0", "1", "2"],
        "similarity": {"kind": "ordinal"},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 1,
        "training": {"epochs": 1},
    }
    made = []
    for _ in range(3):
        r = embedded.client.post("/v1/comparisons", json=body, headers=embedded.auth_a)
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = embedded.client.get("/v1/comparisons", params=params, headers=embedded.auth_a).json()
        assert len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        assert all(c["progress"]["total"] == 2 for c in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made[::-1]
    bad = embedded.client.get("/v1/comparisons", params={"cursor": "x!"}, headers=embedded.auth_a)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "cursor"
    other = embedded.client.get("/v1/comparisons", headers=embedded.auth_b).json()
    assert other["items"] == []
