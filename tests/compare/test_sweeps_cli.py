"""`simtrain compare --sweep` and the client's sweep: the options become the request's `sweep`, and a
swept comparison's summary is a table per headline metric against the parameter that fits 100 columns
and shows the report's verdict, test and Holm-adjusted p (the CLI run against a fake API)."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from compare_testlib import CLASSES, SIM_SPEC, SWEEP, SWEPT_VARIANTS, swept_runs
from rich.console import Console
from typer.testing import CliRunner

from cli.app import app
from cli.connect import Overrides
from cli.tables import summary_caption, summary_table, sweep_table
from core.client import SimtrainClient
from core.client.comparisons import sweep_axis
from core.compare.report import build_report
from core.compare.spec import ComparisonCreate

COMP_ID = "0b7e4c52-8f4e-4a51-9d55-6a2b0c2f7f10"


@pytest.fixture(scope="module")
def report() -> dict:
    return build_report(swept_runs(), classes=CLASSES, similarity_spec=SIM_SPEC, seeds=[10, 11, 12],
                        variants=SWEPT_VARIANTS, n_boot=200, sweep=SWEEP)  # fmt: skip


def _fake_api(answer: dict, posted: list) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(201, json={"id": COMP_ID, "status": "running"})
        if request.url.path.endswith("/report"):
            return httpx.Response(200, text="<!doctype html>")
        return httpx.Response(200, json=answer)

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://simtrain.test")


def _run(argv: list[str], answer: dict | None = None):
    posted: list = []
    result = CliRunner().invoke(
        app, ["compare", *argv, "--api-key", "k"], obj=Overrides(http=_fake_api(answer or {}, posted)),
        env={"COLUMNS": "100"},
    )  # fmt: skip
    return result, posted


def test_sweep_options_become_the_requests_axes():
    result, posted = _run([
        "--dataset", "builtin:digits", "--similarity", json.dumps(SIM_SPEC), "--variant", 'simloss={"kind":"simloss"}',
        "--sweep", "r=similarity.reduction_factor=0,0.5,0.9", "--sweep", "opt=training.optimizer=adamw,sgd",
        "--seeds", "2", "--no-wait",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    [body] = posted
    assert body["sweep"] == [
        {"name": "r", "path": "similarity.reduction_factor", "values": [0, 0.5, 0.9]},
        {"name": "opt", "path": "training.optimizer", "values": ["adamw", "sgd"]},
    ]
    ComparisonCreate.model_validate(body)
    _, posted = _run(["--dataset", "builtin:digits", "--variant", "s={}", "--no-wait",
                      "--sweep", "h=model.hidden=[[16],[32, 16]]"])  # fmt: skip
    assert posted[0]["sweep"] == [{"name": "h", "path": "model.hidden", "values": [[16], [32, 16]]}]


@pytest.mark.parametrize(
    "sweeps, message",
    [
        (["a=training.learning_rate=0.1"] * 3, "at most 2 --sweep"),
        (["r=similarity.reduction_factor"], "expected NAME=PATH=V1,V2"),
        (["r=model.hidden=[1,"], "--sweep r is not valid JSON"),
        (["r=model.hidden=[1]x"], "--sweep r is not valid JSON"),
    ],
)
def test_bad_sweep_options_exit_with_one_line(sweeps, message):
    argv = ["--dataset", "builtin:digits", "--variant", "s={}"]
    for s in sweeps:
        argv += ["--sweep", s]
    result, posted = _run(argv)
    assert result.exit_code == 1 and posted == [] and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _render(renderable, width: int = 100) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None, legacy_windows=False)
    console.print(renderable)
    return console.file.getvalue().splitlines()


def test_the_sweep_tables_fit_100_columns_and_show_verdict_test_and_p(report):
    for metric in report["headline"]:
        lines = _render(sweep_table(report, metric))
        text = "\n".join(lines)
        assert max(len(x) for x in lines) <= 100 and "…" not in text, text
        assert lines[0].strip().startswith(metric)
        for row in report["sweep"]["tables"][metric]:
            assert f"{row['mean']:.4f}" in text and f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]" in text
            assert f"{row['diff']:+.4f}" in text and row["verdict"] in text and "t-test" in text
            assert f"{row['p_adjusted']:.3f}" in text or "<.001" in text
    two = json.loads(json.dumps(report))  # two axes, long values: still 100 columns
    two["sweep"]["axes"].append({"name": "lr_factor", "path": "training.learning_rate", "values": [0.0001]})
    for row in two["sweep"]["tables"]["mean_class_distance"]:
        row["point"]["lr_factor"] = 0.0001
    lines = _render(sweep_table(two, "mean_class_distance"))
    assert max(len(x) for x in lines) <= 100 and "0.0001" in "\n".join(lines)


def test_compare_watch_of_a_sweep_prints_the_sweep_tables_and_the_reports_interval(report):
    comp = {"id": COMP_ID, "status": "succeeded", "seeds": [10, 11, 12], "children": [], "report": report,
            "variants": [{"name": v} for v in SWEPT_VARIANTS], "report_url": None,
            "progress": {"total": 9, "succeeded": 9, "fraction": 1.0}}  # fmt: skip
    result, _ = _run(["--watch", COMP_ID], answer=comp)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert max(len(x) for x in out.splitlines()) <= 100, out
    assert report["statistics"]["interval_detail"] in " ".join(out.split())  # not the old bootstrap text
    assert "pooled over seeds" not in out
    for metric in report["headline"]:
        assert f"{metric} (" in out
    assert "simloss" in out and "0.2" in out and "0.8" in out and "p adj" in out


def test_the_summary_shows_the_reports_verdict_test_and_p(report):
    plain = {k: v for k, v in report.items() if k != "sweep"}
    lines = _render(summary_table(plain))
    text = "\n".join(lines)
    assert max(len(x) for x in lines) <= 100, text
    d = plain["variants"]["simloss@r=0.2"]["differences"]["mistake_severity"]
    assert d["verdict"] in text and "t-test" in text and f"{d['p_adjusted']:.3f}" in text
    assert summary_caption(plain).startswith(
        "differences to baseline: " + plain["statistics"]["interval_detail"]
    )


def test_the_client_sends_the_sweep_and_reads_its_block(report):
    posted: list = []
    comp = {"id": COMP_ID, "status": "succeeded", "report": report}
    with SimtrainClient("http://simtrain.test", "k", http=_fake_api(comp, posted)) as client:
        client.create_comparison({"dataset": "builtin:digits", "variants": []},
                                 sweep=[sweep_axis("r", "similarity.reduction_factor", (0.2, 0.8))])  # fmt: skip
        assert client.comparison_sweep(COMP_ID) == report["sweep"]
    assert posted[0]["sweep"] == [{"name": "r", "path": "similarity.reduction_factor", "values": [0.2, 0.8]}]
