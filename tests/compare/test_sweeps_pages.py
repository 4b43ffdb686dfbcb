"""The report page of a swept comparison in headless Chromium: a metric-against-parameter chart per
headline metric (the grid points' means with their intervals, the baseline's mean as a line) and the
sweep table, drawn offline without a console error; a report without a sweep keeps the section hidden.
Headless Chromium under Playwright (`tests/browser.py`), from `scripts/install-chromium.sh`; without it this
test fails, it never skips."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS
from compare_testlib import CLASSES, SIM_SPEC, SWEEP, SWEPT_VARIANTS, swept_runs

from api.ui import render_report_page
from core.compare.report import build_report

META = {
    "id": "5e5e5e5e-0000-4000-8000-000000000000",
    "status": "succeeded",
    "dataset": "builtin:digits",
    "variants": [{"name": v, "loss": {"kind": "simloss"}} for v in SWEPT_VARIANTS],
    "created_at": "2025-01-01T00:00:00+00:00",
    "finished_at": "2025-01-01T00:01:00+00:00",
    "metadata": None,
}


def test_the_sweep_charts_and_table_render_offline(new_tab, tmp_path):
    kw = {"classes": CLASSES, "similarity_spec": SIM_SPEC, "seeds": [10, 11, 12], "variants": SWEPT_VARIANTS,
          "n_boot": 200}  # fmt: skip
    report = build_report(swept_runs(), sweep=SWEEP, **kw)
    page = tmp_path / "sweep.html"
    page.write_text(render_report_page(report, META), encoding="utf-8")
    plain = tmp_path / "plain.html"
    plain.write_text(render_report_page(build_report(swept_runs(), **kw), META), encoding="utf-8")
    tab = new_tab(width=1280, height=1000)
    b = tab.page
    b.goto(page.as_uri())
    tab.wait("document.body.dataset.ready === '1'")
    shown = b.evaluate("!document.getElementById('sweep-section').hidden")
    charts = {
        m: b.evaluate(
            f"(() => {{ const c = Chart.getChart(document.getElementById('sweep-{m}'));"
            " return c ? c.data.datasets.map(d => ({label: d.label, y: d.data.map(p => p.y),"
            " iv: d.intervals || null})) : null; })()"
        )
        for m in report["headline"]
    }
    table_rows = b.evaluate("document.querySelectorAll('#sweep-table tr').length")
    b.evaluate("document.getElementById('sweep-section').scrollIntoView()")
    tab.screenshot("compare-sweep-report.png")
    b.goto(plain.as_uri())
    tab.wait("document.body.dataset.ready === '1'")
    plain_hidden = b.evaluate("document.getElementById('sweep-section').hidden")
    external = [u for u in tab.requested if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert tab.problems() == [] and external == []
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
