"""A sweep end to end: `POST /v1/comparisons` with a sweep over `similarity.reduction_factor` in
{0.2, 0.8} on `builtin:digits` (a tiny model, 2 epochs, 3 seeds, a fixed 60/20/20 split) on the
embedded default with a real `celery worker` subprocess; every child trains with its grid point's
similarity, the comparison succeeds, and the report's per-parameter numbers are the children's stored
test metrics."""

from __future__ import annotations

import time

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.connect import Overrides

pytestmark = [pytest.mark.slow]

R = {"name": "r", "path": "similarity.reduction_factor", "values": [0.2, 0.8]}
BODY = {
    "dataset": "builtin:digits",
    "similarity": {"kind": "ordinal", "reduction_factor": 0.5},
    "model": {"kind": "mlp", "hidden": [16]},
    "training": {"epochs": 2, "seed": 11, "batch_size": 128, "split": {"val": 0.2, "test": 0.2, "seed": 42}},
    "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
    "seeds": 3,
    "sweep": [R],
}
NAMES = ["baseline", "simloss@r=0.2", "simloss@r=0.8"]


def _wait(stack, comp_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = stack.client.get(f"/v1/comparisons/{comp_id}", headers=stack.headers).json()
        if body["status"] in ("succeeded", "partial", "failed", "cancelled"):
            return body
        time.sleep(0.5)
    raise AssertionError(f"comparison {comp_id} not finished after {timeout}s: {body['progress']}")


def test_a_sweep_trains_every_grid_point_and_reports_the_childrens_numbers(stack_factory):
    stack = stack_factory("sqlite")
    r = stack.client.post("/v1/comparisons", json=BODY, headers=stack.headers)
    assert r.status_code == 201, r.text
    comp = r.json()
    assert [v["name"] for v in comp["variants"]] == NAMES and len(comp["children"]) == 9
    stack.start_worker()
    done = _wait(stack, comp["id"])
    assert done["status"] == "succeeded", (done["children"], stack.logs())
    jobs = {k["job_id"]: stack.get(k["job_id"]) for k in done["children"]}
    by = {(k["variant"], k["seed"]): jobs[k["job_id"]] for k in done["children"]}
    for (variant, _seed), job in by.items():  # each child trained with its grid point's similarity
        expected = {"baseline": 0.5, "simloss@r=0.2": 0.2, "simloss@r=0.8": 0.8}[variant]
        assert job["spec"]["similarity"]["reduction_factor"] == expected
        assert job["spec"]["loss"]["kind"] == ("cross_entropy" if variant == "baseline" else "simloss")
    assert all(job["final_metrics"]["evaluated_on"] == "test" for job in jobs.values())
    report = done["report"]
    assert report["evaluated_on"] == "test" and not report["warnings"], report.get("warnings")
    block = report["sweep"]
    assert block["axes"] == [R] and block["variants"] == ["simloss"]
    seeds = [11, 12, 13]
    for metric in report["headline"]:
        rows = block["tables"][metric]
        assert [(row["name"], row["point"]) for row in rows] == [("simloss@r=0.2", {"r": 0.2}),
                                                                  ("simloss@r=0.8", {"r": 0.8})]  # fmt: skip
        for row in rows:
            stored = [by[row["name"], s]["final_metrics"][metric] for s in seeds]
            assert row["seeds"] == seeds and row["values"] == stored
            assert row["job_ids"] == [by[row["name"], s]["id"] for s in seeds]
            assert row["mean"] == pytest.approx(np.mean(stored), abs=1e-12)
            assert row["std"] == pytest.approx(np.std(stored, ddof=1), abs=1e-12)
            diffs = [stored[i] - by["baseline", s]["final_metrics"][metric] for i, s in enumerate(seeds)]
            per_seed = report["variants"][row["name"]]["differences"][metric]["per_seed"]
            assert [d["diff"] for d in per_seed] == pytest.approx(diffs)
            assert row["verdict"] in ("better", "worse", "no evidence") and row["test"] == "paired_t_test"
            assert row["p_adjusted"] is None or 0 <= row["p_adjusted"] <= 1
        base = [by["baseline", s]["final_metrics"][metric] for s in seeds]
        assert block["baseline"][metric]["values"] == base
    # the page carries the sweep; the CLI prints the table per metric within 100 columns
    page = stack.client.get(f"/v1/comparisons/{comp['id']}/report", headers=stack.headers)
    assert page.status_code == 200 and '"sweep":{"axes"' in page.text and 'id="sweep-section"' in page.text
    key = stack.headers["Authorization"].split()[1]
    result = CliRunner().invoke(
        app, ["compare", "--watch", comp["id"], "--api-key", key], obj=Overrides(http=stack.client),
        env={"COLUMNS": "100"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "sweep over r = similarity.reduction_factor" in result.stdout and "p adj" in result.stdout
    assert max(len(x) for x in result.stdout.splitlines()) <= 100
