"""The HTML report and the console's jobs pages (`api.ui`) in headless Chromium (Playwright,
`tests/browser.py`): they render their charts without a console error, the report offline from a file, the
console against the real API. Screenshots go to `test-artifacts/` (git-ignored). Chromium comes from
`scripts/install-chromium.sh`; without it these tests fail, they never skip."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS
from compare_testlib import CLASSES, SIM_SPEC, synthetic_runs

from api.ui import render_report_page
from core.compare.report import ChildRun, build_report
from tests.live_server import live_server

# a class name that would break the page if it were ever inserted as markup
EVIL = '</script><img src=x onerror="window.__pwned=1">'
READY = "document.body.dataset.ready === '1'"


@pytest.fixture(scope="module")
def report() -> dict:
    return build_report(
        synthetic_runs(),
        classes=CLASSES,
        similarity_spec=SIM_SPEC,
        seeds=[10, 11],
        variants=["baseline", "near", "other"],
        n_boot=300,
    )


def _meta(comp_id: str = "c0ffee00-0000-4000-8000-000000000000") -> dict:
    return {
        "id": comp_id,
        "status": "succeeded",
        "dataset": "builtin:digits",
        "variants": [
            {"name": "baseline", "loss": {"kind": "cross_entropy"}},
            {"name": "near", "loss": {"kind": "simloss"}},
            {"name": "other", "loss": {"kind": "soft_labels"}},
        ],
        "created_at": "2025-01-01T00:00:00+00:00",
        "finished_at": "2025-01-01T00:01:00+00:00",
        "metadata": {"note": EVIL},
    }


def test_report_page_renders_offline_without_errors(new_tab, report, tmp_path):
    evil = dict(report)
    evil["similarity_spec"] = {**SIM_SPEC, "note": EVIL}
    page = tmp_path / "report.html"
    page.write_text(render_report_page(evil, _meta()), encoding="utf-8")
    tab = new_tab(width=1280, height=1000)
    b = tab.page
    b.goto(page.as_uri())
    tab.wait(READY)
    charts = b.evaluate(
        "Array.from(document.querySelectorAll('canvas')).filter(c => Chart.getChart(c)).length"
    )
    heatmaps = b.evaluate(
        "['confusion-baseline','confusion-near','confusion-other','similarity-matrix']"
        ".map(id => document.getElementById(id)).filter(c => c && c.width > 100).length"
    )
    # something was drawn: the similarity heatmap's top-left cell is the darkest blue (S = 1)
    pixel = b.evaluate(
        "(() => { const c = document.getElementById('similarity-matrix'); const r = window.devicePixelRatio||1;"
        " return Array.from(c.getContext('2d').getImageData(70*r, 20*r, 1, 1).data); })()"
    )
    summary = b.evaluate("document.querySelectorAll('#summary tr').length")
    improved = b.evaluate("document.querySelectorAll('#summary td.improved').length")
    pwned = b.evaluate("window.__pwned === 1")
    tab.screenshot("compare-report.png")
    # a comparison cancelled before anything trained, without a similarity: still a page, no error
    empty = build_report(
        [ChildRun(job_id=f"j{v}", variant=v, seed=1, status="cancelled") for v in ("baseline", "simloss")],
        classes=CLASSES, similarity_spec=None, seeds=[1], variants=["baseline", "simloss"], n_boot=10,
    )  # fmt: skip
    page2 = tmp_path / "empty.html"
    page2.write_text(render_report_page(empty, {**_meta(), "status": "cancelled"}))
    b.goto(page2.as_uri())
    tab.wait(READY)
    assert b.evaluate("document.querySelectorAll('#runs tr').length") == 3
    external = [u for u in tab.requested if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert tab.problems() == []
    assert external == []  # works offline: nothing fetched
    assert (
        charts == 4 + 3
    )  # a difference chart per headline metric; curves: val loss, val accuracy, train loss
    assert heatmaps == 4
    assert pixel[:3] == [8, 48, 107]
    assert summary == 4 and improved >= 3  # "near" improves severity, similarity and distance
    assert pwned is False
    assert (ARTIFACTS / "compare-report.png").stat().st_size > 10_000


@pytest.fixture
def live_service(make_service, report):
    """The app (embedded default) served by uvicorn on a free port, with jobs and a finished comparison."""

    from core.db import jobs as jobstate
    from core.db.models import Comparison, JobEpoch
    from core.db.types import now

    svc = make_service("sqlite")
    with svc.sessionmaker() as s:
        comp = Comparison(
            tenant_id=svc.tenant_a,
            spec={"dataset": "builtin:digits", "classes": CLASSES, "similarity": SIM_SPEC,
                  "seed_values": [10, 11], "variants": _meta()["variants"],
                  "variant_names": ["baseline", "near", "other"], "request": {}},
            status="succeeded", report=report, finished_at=now(),
        )  # fmt: skip
        s.add(comp)
        s.flush()
        runs = synthetic_runs()
        for k, run in enumerate(runs):
            job = jobstate.create_job(
                s, tenant_id=svc.tenant_a, dataset_ref="builtin:digits",
                spec={"classes": CLASSES, "loss": {"kind": "simloss"}, "training": {"seed": run.seed},
                      "metadata": {"variant": run.variant}},
                epochs=2, max_attempts=3, comparison_id=comp.id, variant=run.variant,
            )  # fmt: skip
            running = k == 0
            job.status = "running" if running else "succeeded"
            job.epoch = 1 if running else 2
            job.final_metrics = None if running else run.metrics
            job.latest_metrics = run.history[0]
            for rec in run.history[: job.epoch]:
                s.add(JobEpoch(job_id=job.id, epoch=rec["epoch"], record=rec))
        # the other tenant's job must not show up
        jobstate.create_job(
            s, tenant_id=svc.tenant_b, dataset_ref="builtin:digits", spec={}, epochs=1, max_attempts=3
        )
        s.commit()
        comp_id = comp.id
    with live_server(svc.app) as base_url:
        yield svc, base_url, comp_id


def test_console_lists_jobs_polls_and_shows_curves_and_confusion(new_tab, live_service):
    svc, base, _comp_id = live_service
    tab = new_tab(width=1280, height=1000)
    b = tab.page
    b.goto(f"{base}/ui/jobs")  # no key kept: the page sends the browser to sign in
    b.wait_for_url(f"{base}/ui/signin?next=%2Fui%2Fjobs")
    tab.wait(READY)
    # a wrong key: a message, and it is not kept
    b.fill("#api-key", "st_wrong")
    b.press("#api-key", "Enter")
    tab.wait("document.getElementById('signin-message').textContent.includes('did not accept')")
    assert b.evaluate("sessionStorage.getItem('simtrain.apiKey')") is None
    b.fill("#api-key", svc.key_a)
    b.press("#api-key", "Enter")
    b.wait_for_url(f"{base}/ui/jobs")
    assert b.evaluate("sessionStorage.getItem('simtrain.apiKey')") == svc.key_a
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 6")  # tenant B's job: not listed
    tab.wait(READY)
    assert "Live" in b.text_content("#jobs-status")  # a job is running: polling
    # a finished job: its curves and confusion matrix
    b.locator("#jobs-body tr[data-status=succeeded] a").first.click()
    b.wait_for_url(f"{base}/ui/jobs/*")
    tab.wait(READY)
    tab.wait("!!Chart.getChart(document.getElementById('chart-loss'))")
    tab.wait("!document.getElementById('confusion-box').hidden")
    assert b.evaluate("document.getElementById('confusion').width") > 100
    assert b.evaluate("Chart.getChart(document.getElementById('chart-val')).data.labels.length") == 2
    # the running job finishes while the list polls: the table follows without a reload
    b.go_back()
    tab.wait("document.querySelectorAll('#jobs-body tr[data-status=running]').length === 1")
    from core.db.models import Job

    with svc.sessionmaker() as s:
        running = s.query(Job).filter(Job.status == "running").one()
        running.status, running.epoch, running.final_metrics = "succeeded", 2, {"accuracy": 0.5}
        s.commit()
    tab.wait("document.querySelectorAll('#jobs-body tr[data-status=running]').length === 0", timeout=15_000)
    tab.screenshot("compare-jobs-page.png")
    # a key the API stops accepting: back to the sign-in page, the key forgotten
    b.evaluate("sessionStorage.setItem('simtrain.apiKey', 'st_revoked')")
    b.reload()
    b.wait_for_url(f"{base}/ui/signin*")
    assert b.evaluate("sessionStorage.getItem('simtrain.apiKey')") is None
    assert tab.problems(ignore=("401",)) == []
