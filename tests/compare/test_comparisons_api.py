"""`/v1/comparisons` end to end: the real API on the embedded default (SQLite database, SQLite broker), a
real `celery worker` subprocess, `builtin:digits` with an ordinal similarity, three similarity-aware
variants and the baseline over two seeds; the report's numbers are the children's stored metrics."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.connect import Overrides

pytestmark = [pytest.mark.slow]

SIM = {"kind": "ordinal", "reduction_factor": 0.5}
BODY = {
    "dataset": "builtin:digits",
    "similarity": SIM,
    "model": {"kind": "mlp", "hidden": [32]},
    "training": {"epochs": 2, "seed": 7, "batch_size": 128},
    "variants": [
        {"name": "simloss", "loss": {"kind": "simloss"}},
        {"name": "soft", "loss": {"kind": "soft_labels"}},
        {"name": "ev", "loss": {"kind": "expected_value"}},
    ],
    "seeds": 2,
}
VARIANTS = ["baseline", "simloss", "soft", "ev"]
TERMINAL = ("succeeded", "partial", "failed", "cancelled")


def _wait_comparison(stack, comp_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = stack.client.get(f"/v1/comparisons/{comp_id}", headers=stack.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.5)
    raise AssertionError(
        f"comparison {comp_id} not finished after {timeout}s: {body['progress']}\n{stack.logs()}"
    )


def _npz(data: bytes) -> dict:
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


def compare_command(argv: list[str], http) -> tuple[int, str]:
    """`simtrain compare ARGV` sending through `http` (the stack's TestClient): (exit status, output)."""
    result = CliRunner().invoke(app, ["compare", *argv], obj=Overrides(http=http))
    return result.exit_code, result.output


def test_comparison_fans_out_trains_and_reports_the_childrens_numbers(stack_factory, tmp_path):
    stack = stack_factory("sqlite")
    c = stack.client
    key = stack.headers["Authorization"].split()[1]
    # submitted the way `simtrain compare` does it
    argv = [
        "--api-key",
        key,
        "--dataset",
        "builtin:digits",
        "--similarity",
        json.dumps(SIM),
        "--model",
        json.dumps(BODY["model"]),
        "--training",
        json.dumps(BODY["training"]),
        "--seeds",
        "2",
    ]
    for v in BODY["variants"]:
        argv += ["--variant", f"{v['name']}={json.dumps(v['loss'])}"]
    rc, out = compare_command(argv + ["--no-wait"], http=c)
    assert rc == 0, out
    comp = c.get(f"/v1/comparisons/{out.strip()}", headers=stack.headers).json()
    assert comp["spec"] == {
        **BODY,
        "classes": None,
        "metadata": None,
        "tracking": None,
        "priority": "normal",
        "resources": {"device": "auto"},
        "training": comp["spec"]["training"],
        "model": comp["spec"]["model"],
        "similarity": comp["spec"]["similarity"],
        "variants": comp["spec"]["variants"],
    }
    assert comp["status"] == "running" and comp["seeds"] == [7, 8]
    assert [v["name"] for v in comp["variants"]] == VARIANTS
    assert {(k["variant"], k["seed"]) for k in comp["children"]} == {(v, s) for v in VARIANTS for s in (7, 8)}
    for kid in comp["children"]:  # each child went through the normal job path, seeded by the comparison
        job = stack.get(kid["job_id"])
        assert job["spec"]["training"]["seed"] == kid["seed"]
        assert (
            job["spec"]["loss"]["kind"]
            == {
                "baseline": "cross_entropy",
                "simloss": "simloss",
                "soft": "soft_labels",
                "ev": "expected_value",
            }[kid["variant"]]
        )
        assert job["spec"]["similarity"]["kind"] == "ordinal" and job["dispatched_at"] is not None
    # not finished: no report yet
    r = c.get(f"/v1/comparisons/{comp['id']}/report", headers=stack.headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"

    # a second comparison, cancelled before any worker runs: its children end at once
    small = {**BODY, "variants": BODY["variants"][:1], "seeds": 1}
    other = c.post("/v1/comparisons", json=small, headers=stack.headers).json()
    r = c.post(f"/v1/comparisons/{other['id']}/cancel", headers=stack.headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "cancelled" and r.json()["progress"]["cancelled"] == 2
    assert c.post(f"/v1/comparisons/{other['id']}/cancel", headers=stack.headers).status_code == 409

    stack.start_worker()
    # followed the way `simtrain compare --watch ID --report PATH` does it: a table per change, then a summary
    html_path = tmp_path / "report.html"
    rc, text = compare_command(
        ["--api-key", key, "--watch", comp["id"], "--interval", "0.5", "--timeout", "300",
         "--report", str(html_path)],
        http=c,
    )  # fmt: skip
    assert rc == 0, (text, stack.logs())
    assert f"comparison {comp['id']}: succeeded  8/8 runs done, 100%" in text
    assert "differences to baseline" in text and "simloss" in text.split("differences to baseline")[1]
    assert html_path.read_text().startswith("<!doctype html>")
    done = _wait_comparison(stack, comp["id"])
    assert done["status"] == "succeeded", (done["children"], stack.logs())
    assert done["progress"] == {
        "total": 8,
        "queued": 0,
        "running": 0,
        "paused": 0,
        "succeeded": 8,
        "failed": 0,
        "cancelled": 0,
        "fraction": 1.0,
    }
    report = done["report"]
    assert report is not None and done["report_url"] == f"/v1/comparisons/{comp['id']}/report"
    assert report["headline"] == ["accuracy", "mistake_severity", "mean_similarity", "mean_class_distance"]

    jobs = {k["job_id"]: stack.get(k["job_id"]) for k in done["children"]}
    by = {(k["variant"], k["seed"]): jobs[k["job_id"]] for k in done["children"]}
    # the stored metrics: the job rows and the metrics.json artifacts agree, and so does the report
    for kid in done["children"]:
        final = jobs[kid["job_id"]]["final_metrics"]
        assert json.loads(stack.download(kid["job_id"], "metrics.json"))["final"] == final
        run = next(x for x in report["runs"] if x["job_id"] == kid["job_id"])
        assert run["metrics"] == {k: v for k, v in final.items() if k != "confusion_matrix"}
    for v in VARIANTS:
        entry = report["variants"][v]
        assert entry["succeeded"] == 2
        for m in (
            "accuracy",
            "mistake_severity",
            "mean_similarity",
            "mean_class_distance",
            "macro_f1",
            "nll",
        ):
            vals = [by[v, s]["final_metrics"][m] for s in (7, 8)]
            assert entry["metrics"][m]["values"] == vals
            assert entry["metrics"][m]["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
            assert entry["metrics"][m]["std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
        assert (
            entry["confusion_matrix"]
            == np.sum([by[v, s]["final_metrics"]["confusion_matrix"] for s in (7, 8)], axis=0).tolist()
        )
        assert entry["curves"]["epoch"] == [1, 2]
    # same seed, same split: the variants of a seed were validated on the same samples
    for s in (7, 8):
        idx = [_npz(stack.download(by[v, s]["id"], "predictions.npz"))["indices"] for v in VARIANTS]
        assert all(np.array_equal(idx[0], i) for i in idx[1:])
    # paired differences: pooled over seeds of equal size, a mean metric's difference is the mean difference
    for v in VARIANTS[1:]:
        diffs = report["variants"][v]["differences"]
        for m in ("accuracy", "mean_similarity", "mean_class_distance"):
            expected = np.mean(
                [by[v, s]["final_metrics"][m] - by["baseline", s]["final_metrics"][m] for s in (7, 8)]
            )
            assert diffs[m]["diff"] == pytest.approx(expected, abs=1e-6)
            assert diffs[m]["ci_low"] <= diffs[m]["diff"] <= diffs[m]["ci_high"]
            assert diffs[m]["distinguishable"] == (diffs[m]["ci_low"] > 0 or diffs[m]["ci_high"] < 0)
            assert [d["seed"] for d in diffs[m]["per_seed"]] == [7, 8]

    # computed once: stored, and the next GET returns the same report
    from core.db.models import Comparison

    with stack.session() as s:
        row = s.get(Comparison, comp["id"])
        assert row.status == "succeeded" and row.report == report and row.finished_at is not None
    assert c.get(f"/v1/comparisons/{comp['id']}", headers=stack.headers).json()["report"] == report

    # the HTML report, inline and as a download
    r = c.get(f"/v1/comparisons/{comp['id']}/report", headers=stack.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"Comparison {comp['id']}" not in r.text  # rendered by script from the data, not markup
    assert comp["id"] in r.text and "new Chart" in r.text and 'src="http' not in r.text
    r = c.get(f"/v1/comparisons/{comp['id']}/report?download=1", headers=stack.headers)
    assert r.headers["content-disposition"] == f'attachment; filename="comparison-{comp["id"]}.html"'

    # the list, newest first
    items = c.get("/v1/comparisons", headers=stack.headers).json()["items"]
    assert [(i["id"], i["status"]) for i in items] == [(other["id"], "cancelled"), (comp["id"], "succeeded")]
    page = c.get("/v1/comparisons?limit=1", headers=stack.headers).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert (
        c.get(f"/v1/comparisons?limit=1&cursor={page['next_cursor']}", headers=stack.headers).json()["items"][
            0
        ]["id"]
        == comp["id"]
    )

    # another tenant sees none of it
    from core.auth import create_api_key

    with stack.session() as s:
        stranger = {"Authorization": f"Bearer {create_api_key(s, 'stranger')}"}
    for method, path in (("get", ""), ("get", "/report"), ("post", "/cancel")):
        r = getattr(c, method)(f"/v1/comparisons/{comp['id']}{path}", headers=stranger)
        assert r.status_code == 404, (path, r.text)
    assert c.get("/v1/comparisons", headers=stranger).json()["items"] == []
