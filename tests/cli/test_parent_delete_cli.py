"""`simtrain comparisons delete ID [--yes] [--json]` against the real API on a real HTTP server: the
question (answered no: nothing deleted; yes: the comparison and its child jobs deleted), `--yes --json`
for scripts, and the one red line of a 409 (a running comparison) and of a 404 (another tenant's, one
deleted already).

.venv/bin/python -m pytest -q tests/cli/test_parent_delete_cli.py
"""

from __future__ import annotations

import json

from cli_testlib import simtrain

from core.job_delete import job_prefix

COMPARISON = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "similarity": {"kind": "ordinal"},
    "model": {"kind": "linear"},
    "training": {"epochs": 1},
    "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
    "seeds": 1,
}


def comparison(svc, *, cancel: bool = True) -> tuple[str, list[str]]:
    """A comparison of tenant A (cancelled when `cancel`), a file stored under each child's prefix."""
    r = svc.client.post("/v1/comparisons", json=COMPARISON, headers=svc.auth_a)
    assert r.status_code == 201, r.text
    comp_id, children = r.json()["id"], [c["job_id"] for c in r.json()["children"]]
    if cancel:
        assert svc.client.post(f"/v1/comparisons/{comp_id}/cancel", headers=svc.auth_a).status_code == 202
    for child in children:
        svc.storage.put_bytes(f"{job_prefix(child)}artifacts/proof.bin", b"stored")
    return comp_id, children


def status_codes(svc, comp_id: str, children: list[str]) -> list[int]:
    paths = [f"/v1/comparisons/{comp_id}", *(f"/v1/jobs/{c}" for c in children)]
    return [svc.client.get(p, headers=svc.auth_a).status_code for p in paths]


def stored(svc, children: list[str]) -> list[list[str]]:
    return [svc.storage.list(job_prefix(c)) for c in children]


def test_delete_asks_first_and_deletes_the_comparison_with_its_children(live):
    url, svc = live
    comp_id, children = comparison(svc)
    files = stored(svc, children)

    kept = simtrain(["comparisons", "delete", comp_id], url=url, key=svc.key_a, input="n\n")
    assert kept.exit_code == 1 and "deleted" not in kept.stdout, kept.output
    assert f"Delete comparison {comp_id}" in kept.stderr and "Aborted" in kept.stderr
    assert status_codes(svc, comp_id, children) == [200, 200, 200] and stored(svc, children) == files

    other = simtrain(["comparisons", "delete", comp_id, "--yes"], url=url, key=svc.key_b)
    assert other.exit_code == 1, other.output
    assert other.stderr.strip() == f"simtrain: 404 not_found: comparison {comp_id!r} not found"
    assert status_codes(svc, comp_id, children) == [200, 200, 200]

    done = simtrain(["comparisons", "delete", comp_id], url=url, key=svc.key_a, input="y\n")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().splitlines()[-1] == f"comparison {comp_id}: deleted"
    assert status_codes(svc, comp_id, children) == [404, 404, 404]
    assert stored(svc, children) == [[], []]

    twice = simtrain(["comparisons", "delete", comp_id, "--yes"], url=url, key=svc.key_a)
    assert twice.exit_code == 1 and twice.stderr.startswith("simtrain: 404 not_found"), twice.output


def test_delete_yes_json_and_a_running_comparison(live):
    url, svc = live
    comp_id, children = comparison(svc)
    result = simtrain(["comparisons", "delete", comp_id, "--yes", "--json"], url=url, key=svc.key_a)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"id": comp_id, "deleted": True}
    assert result.stderr == ""  # no question with --yes
    assert status_codes(svc, comp_id, children) == [404, 404, 404]

    running, kids = comparison(svc, cancel=False)
    refused = simtrain(["comparisons", "delete", running, "-y"], url=url, key=svc.key_a)
    assert refused.exit_code == 1 and refused.stdout == "", refused.output
    [line] = refused.stderr.strip().splitlines()
    assert line == f"simtrain: 409 conflict: comparison {running} is running; cancel it first, then delete it"
    assert status_codes(svc, running, kids) == [200, 200, 200]


def test_tuning_delete_of_an_unknown_study_is_the_404_line(live):
    url, svc = live
    result = simtrain(["tuning", "delete", "nope", "--yes"], url=url, key=svc.key_a)
    assert result.exit_code == 1 and result.stdout == "", result.output
    assert result.stderr.strip() == "simtrain: 404 not_found: tuning study 'nope' not found"
