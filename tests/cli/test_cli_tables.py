"""The tables and live progress of the CLI fit the terminal: the comparison table and summary on a
100-column console (long names abbreviated, every seed shown), `simtrain compare` through a fake API,
and the rich.progress displays on a terminal."""

from __future__ import annotations

import io
import json

import httpx
from rich.console import Console
from typer.testing import CliRunner

from cli.app import app
from cli.connect import Overrides
from cli.progress import ComparisonProgress, JobProgress
from cli.tables import comparison_head, comparison_table, jobs_table, summary_table

LONG = "a-variant-name-that-is-much-too-long-for-any-table-column"
SEEDS = list(range(7, 17))  # ten seeds, the most a comparison has
VARIANTS = ["baseline", "simloss", LONG]
STATUSES = ["succeeded", "running", "failed", "queued", "cancelled"]


def _child(variant: str, seed: int, i: int) -> dict:
    status = STATUSES[i % len(STATUSES)]
    return {
        "job_id": f"job-{variant}-{seed}", "variant": variant, "seed": seed, "status": status,
        "epoch": 3, "epochs": 10,
        "metrics": {"accuracy": 0.9 + i / 1000} if status == "succeeded" else None,
        "error": {"code": "training_failed", "message": "nan"} if status == "failed" else None,
    }  # fmt: skip


def _comparison(status: str = "running", report: dict | None = None) -> dict:
    children = [_child(v, s, i) for i, (v, s) in enumerate((v, s) for v in VARIANTS for s in SEEDS)]
    return {
        "id": "0b7e4c52-8f4e-4a51-9d55-6a2b0c2f7f10", "status": status, "seeds": SEEDS,
        "variants": [{"name": v, "loss": {}} for v in VARIANTS], "children": children,
        "progress": {"total": 30, "succeeded": 6, "failed": 6, "cancelled": 6, "fraction": 0.7},
        "report": report, "report_url": None,
    }  # fmt: skip


def _report() -> dict:
    headline = ["accuracy", "mistake_severity", "mean_similarity", "mean_class_distance"]
    diff = {"diff": 0.0123, "ci_low": -0.0012, "ci_high": 0.0234, "improved": False, "worse": False}
    variants = {
        v: {
            "metrics": {m: {"mean": 12.3456, "std": 1.2345} for m in headline},
            "differences": None if v == "baseline" else {m: diff for m in headline},
        }
        for v in VARIANTS
    }
    return {"baseline": "baseline", "confidence": 0.95, "headline": headline, "variants_order": VARIANTS,
            "variants": variants}  # fmt: skip


def _render(renderable, width: int = 100) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def test_the_comparison_table_fits_100_columns_with_ten_seeds_and_long_names():
    comp = _comparison()
    rows = _render(comparison_table(comp, width=100))
    assert rows and max(len(r) for r in rows) <= 100, "\n".join(rows)
    header = rows[0].split()
    assert header[0] == "variant" and header[1:11] == [str(s) for s in SEEDS]
    text = "\n".join(rows)
    assert LONG not in text and "a-variant-name-…" in text  # abbreviated
    assert "0.900" in text and "3/10" in text and "FAIL" in text  # compact cells
    wide = "\n".join(_render(comparison_table(comp, width=200), width=200))
    assert "seed 7" in wide and "ok 0.9000" in wide and "FAIL training…" in wide
    assert len(comparison_head(comp)) <= 100


def test_the_summary_fits_100_columns():
    rows = _render(summary_table(_report()))
    assert max(len(r) for r in rows) <= 100, "\n".join(rows)
    text = "\n".join(rows)
    assert "12.3456 +- 1.2345" in text and "+0.0123" in text and "[-0.0012, +0.0234]" in text
    assert "mean_class_distance" in text and "95% CI" in text


def test_jobs_table_keeps_ids_whole():
    job = {"id": "0b7e4c52-8f4e-4a51-9d55-6a2b0c2f7f10", "status": "running", "dataset": LONG,
           "spec": {"loss": {"kind": "simloss"}}, "progress": {"epoch": 3, "epochs": 10},
           "created_at": "2024-01-02T03:04:05.678Z"}  # fmt: skip
    rows = _render(jobs_table([job], width=80), width=80)
    assert max(len(r) for r in rows) <= 80 and job["id"] in "\n".join(rows)


def _fake_api(comp: dict) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/report"):
            return httpx.Response(200, text="<!doctype html><p>report</p>")
        return httpx.Response(200, json=comp)

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://simtrain.test")


def test_compare_watch_prints_a_table_and_summary_that_fit_100_columns(tmp_path):
    comp = _comparison("partial", _report()) | {"report_url": "/v1/comparisons/x/report"}
    report = tmp_path / "r.html"
    result = CliRunner().invoke(
        app, ["compare", "--watch", comp["id"], "--api-key", "k", "--report", str(report)],
        obj=Overrides(http=_fake_api(comp)), env={"COLUMNS": "100"},
    )  # fmt: skip
    assert result.exit_code == 1  # partial: not every run succeeded
    lines = result.stdout.splitlines()
    assert lines[0] == comparison_head(comp)
    assert "differences to baseline" in result.stdout and report.read_text().startswith("<!doctype html>")
    assert max(len(r) for r in lines) <= 100, result.stdout
    as_json = CliRunner().invoke(
        app, ["compare", "--watch", comp["id"], "--api-key", "k", "--json"],
        obj=Overrides(http=_fake_api(comp)),
    )
    assert json.loads(as_json.stdout)["id"] == comp["id"]  # nothing but the JSON on stdout


def test_live_progress_on_a_terminal():
    file = io.StringIO()
    console = Console(file=file, force_terminal=True, width=100, color_system=None)
    job = {"status": "queued", "progress": {"epoch": 0, "epochs": 2}}
    with JobProgress(job, console) as shown:
        shown.event({"kind": "state", "data": {"status": "running"}, "message": "[claimed]"})
        shown.event({"kind": "epoch", "data": {"epoch": 2, "val": {"loss": 0.5, "accuracy": 0.75}}})
        shown.event({"kind": "state", "data": {"status": "succeeded"}, "message": ""})
    text = file.getvalue()
    assert "[succeeded]" in text and "2/2" in text and "accuracy=0.75" in text

    file = io.StringIO()
    console = Console(file=file, force_terminal=True, width=100, color_system=None)
    with ComparisonProgress(console, live=True) as shown:
        shown.update(_comparison())
    text = file.getvalue()
    assert "18/30" in text and "variant" in text
