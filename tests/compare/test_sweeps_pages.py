"""The report page of a swept comparison in headless Chromium: a metric-against-parameter chart per
headline metric (the grid points' means with their intervals, the baseline's mean as a line) and the
sweep table, drawn offline without a console error; a report without a sweep keeps the section hidden.
Chromium comes from `scripts/install-chromium.sh`; without it this test fails, it never skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from compare_browser import Browser, find_chromium
from compare_testlib import CLASSES, SIM_SPEC, SWEEP, SWEPT_VARIANTS, swept_runs

from api.ui import render_report_page
from core.compare.report import build_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
META = {
    "id": "5e5e5e5e-0000-4000-8000-000000000000",
    "status": "succeeded",
    "dataset": "builtin:digits",
    "variants": [{"name": v, "loss": {"kind": "simloss"}} for v in SWEPT_VARIANTS],
    "created_at": "2025-01-01T00:00:00+00:00",
    "finished_at": "2025-01-01T00:01:00+00:00",
    "metadata": None,
}


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None:
        pytest.fail("chromium is not installed: run scripts/install-chromium.sh")
    return exe


def test_the_sweep_charts_and_table_render_offline(chromium, tmp_path):
    kw = {"classes": CLASSES, "similarity_spec": SIM_SPEC, "seeds": [10, 11, 12], "variants": SWEPT_VARIANTS,
          "n_boot": 200}  # fmt: skip
    report = build_report(swept_runs(), sweep=SWEEP, **kw)
    page = tmp_path / "sweep.html"
    page.write_text(render_report_page(report, META), encoding="utf-8")
    plain = tmp_path / "plain.html"
    plain.write_text(render_report_page(build_report(swept_runs(), **kw), META), encoding="utf-8")
    with Browser(tmp_path) as b:
        b.goto(page.as_uri())
        b.wait_js("document.body.dataset.ready === '1'")
        shown = b.js("!document.getElementById('sweep-section').hidden")
        charts = {
            m: b.js(
                f"(() => {{ const c = Chart.getChart(document.getElementById('sweep-{m}'));"
                " return c ? c.data.datasets.map(d => ({label: d.label, y: d.data.map(p => p.y),"
                " iv: d.intervals || null})) : null; })()"
            )
            for m in report["headline"]
        }
        table_rows = b.js("document.querySelectorAll('#sweep-table tr').length")
        b.js("document.getElementById('sweep-section').scrollIntoView(); true")
        b.screenshot(ARTIFACTS / "compare-sweep-report.png")
        b.goto(plain.as_uri())
        b.wait_js("document.body.dataset.ready === '1'")
        plain_hidden = b.js("document.getElementById('sweep-section').hidden")
        errors = b.errors()
        external = [u for u in b.requested_urls() if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert errors == [] and external == []
    assert shown and plain_hidden and table_rows == 1 + 2
    for m, datasets in charts.items():
        rows = report["sweep"]["tables"][m]
        assert datasets is not None, m
        assert [d["label"] for d in datasets] == ["simloss", "baseline (mean)"]
        assert datasets[0]["y"] == pytest.approx([r["mean"] for r in rows])  # the table's numbers, drawn
        assert [x for iv in datasets[0]["iv"] for x in iv] == pytest.approx(
            [x for r in rows for x in (r["ci_low"], r["ci_high"])]
        )
        assert datasets[1]["y"] == pytest.approx([report["sweep"]["baseline"][m]["mean"]] * 2)
    assert (ARTIFACTS / "compare-sweep-report.png").stat().st_size > 10_000
