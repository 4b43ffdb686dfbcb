"""The console's new-job form, comparisons and tuning pages in headless Chromium (Playwright,
`tests/browser.py`) against a real API and a real worker (`tests/ui/conftest.py`'s `console`).

- The form, filled with the keyboard and clicks for `builtin:digits` and a tiny MLP: its similarity
  heatmap draws and follows a changed spec; epochs 0 gets the API's own 422 message next to the epochs
  field (focused) and creates no job; the body it POSTs is its JSON preview, byte for byte, and the job the
  API stored is that request (same canonical hash); the job finishes on its page.
- An upload shows its progress, the new dataset is selected with its classes; another tenant's form
  does not list it.
- A comparison and a tuning study made through the API are listed, and their pages show their children
  or trials and their report in a frame; another tenant gets "not found".

Every page at 1280 and 390 px: screenshots in `test-artifacts/`, no sideways overflow, no console error.

    .venv/bin/pytest -x -q tests/ui/test_console_forms.py
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from browser import WIDTHS, sign_in

TERMINAL = ("succeeded", "partial", "failed", "cancelled")
HEATMAP_INK = "simtrainHeatmap.inkedPixels(document.getElementById('heatmap'))"
UNLABELLED = (
    "[...document.querySelectorAll('#job-form input, #job-form select, #job-form textarea')]"
    ".filter(e => !e.labels || e.labels.length === 0).map(e => e.id || e.outerHTML)"
)


def shots(tab, name: str) -> None:
    """A screenshot at each console width, each without sideways overflow of the document; with a framed
    report also one of the report in view (a full-page capture leaves a sandboxed frame below the fold
    unpainted)."""
    page = tab.page
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)
        assert tab.fits_width(), f"{name}: wider than {width} px"
        assert tab.screenshot(f"console-{name}-{width}.png").stat().st_size > 5_000
        if page.is_visible("#report-frame"):
            page.locator("#report-frame").scroll_into_view_if_needed()
            page.wait_for_timeout(500)
            assert (
                tab.screenshot(f"console-{name}-{width}-report.png", full_page=False).stat().st_size > 5_000
            )
            page.evaluate("scrollTo(0, 0)")
    page.set_viewport_size({"width": 1280, "height": 900})


def api(console, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    r = console.stack.client.request(
        method, path, headers={"Authorization": f"Bearer {key or console.key_a}"}, **kw
    )
    assert r.status_code < 300, r.text
    return r.json()


def wait_api(console, path: str, done, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = api(console, "GET", path)
        if done(body):
            return body
        assert time.monotonic() < deadline, (
            f"{path}: {body.get('status')} {body.get('progress')}\n{console.stack.logs()}"
        )
        time.sleep(0.5)


def preview_count(tab) -> int:
    return int(tab.page.evaluate("Number(document.body.dataset.preview || 0)"))


def changed_preview(tab, before: int) -> None:
    tab.wait(f"Number(document.body.dataset.preview || 0) > {before} && "
             "document.getElementById('preview-status').textContent.includes('classes')")  # fmt: skip


def tab_order(tab, start: str, stop: str, most: int = 80) -> list[str]:
    """The ids the Tab key visits from `start` until `stop`."""
    page = tab.page
    page.focus(f"#{start}")
    seen = [start]
    while seen[-1] != stop and len(seen) < most:
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id"))
    return seen


def fill_form(tab) -> None:
    """Classes 0..7 of builtin:digits, ordinal similarity r = 0.2, SimLoss, an MLP [16], 2 epochs."""
    page = tab.page
    page.click("label[for='class-8']")
    page.click("label[for='class-9']")
    before = preview_count(tab)
    page.fill("#f-similarity-reduction_factor", "")
    page.focus("#f-similarity-reduction_factor")
    page.keyboard.type("0.2")
    changed_preview(tab, before)
    page.select_option("#f-model-kind", "mlp")
    page.fill("#f-model-hidden", "16")
    for field, value in (("learning_rate", "0.01"), ("batch_size", "128"), ("seed", "7")):
        page.fill(f"#f-training-{field}", value)


def _guidance_warns(tab) -> None:
    """The preview's guidance: EMD alone trains slowly, the API says, and the page shows it."""
    page = tab.page
    before = preview_count(tab)
    page.select_option("#loss-kind", "emd")
    changed_preview(tab, before)
    assert "slow_alone" in page.text_content("#preview-warnings") and not page.is_hidden("#preview-warnings")
    assert page.is_hidden("#targets-figure")  # EMD has no target rows
    before = preview_count(tab)
    page.select_option("#loss-kind", "simloss")
    changed_preview(tab, before)
    assert page.is_hidden("#preview-warnings")


def _refused_epochs(console, tab) -> None:
    """Epochs 0: the API's own message beside the epochs field (focused), and no job."""
    page = tab.page
    jobs_before = len(api(console, "GET", "/v1/jobs?limit=100")["items"])
    page.fill("#f-training-epochs", "0")
    refused = json.loads(page.text_content("#json-preview"))
    expected = console.stack.client.post(
        "/v1/jobs", json=refused, headers={"Authorization": f"Bearer {console.key_a}"}
    )
    assert expected.status_code == 422
    message = next(d["msg"] for d in expected.json()["error"]["details"] if d["field"] == "training.epochs")
    page.press("#f-training-epochs", "Enter")  # the keyboard submits the form
    tab.wait("!document.getElementById('f-training-epochs-error').hidden")
    assert page.text_content("#f-training-epochs-error") == f"training.epochs: {message}"
    assert page.get_attribute("#f-training-epochs", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-training-epochs"
    assert len(api(console, "GET", "/v1/jobs?limit=100")["items"]) == jobs_before
    assert page.url.endswith("/ui/new")
    shots(tab, "new-job-refused")


def test_the_form_previews_posts_its_json_and_the_job_finishes(console, new_tab):
    tab = new_tab()
    page = tab.page
    sign_in(tab, console.base, console.key_a, "/ui/new")
    tab.wait("Number(document.body.dataset.preview || 0) >= 1")
    assert page.evaluate(UNLABELLED) == []
    order = tab_order(tab, "dataset", "submit")
    wanted = ["upload-file", "upload-name", "upload-button", "class-0", "similarity-kind",
              "f-similarity-reduction_factor", "loss-kind", "f-model-kind", "f-training-epochs", "submit"]  # fmt: skip
    assert [i for i in order if i in wanted] == wanted, order  # every control by keyboard, in reading order
    assert page.input_value("#dataset") == "builtin:digits"
    assert page.evaluate(HEATMAP_INK) > 1000  # the default spec (ordinal) is drawn
    first = page.evaluate("document.getElementById('heatmap').toDataURL()")
    _guidance_warns(tab)
    fill_form(tab)
    assert page.evaluate(HEATMAP_INK) > 1000
    assert page.evaluate("document.getElementById('heatmap').toDataURL()") != first  # r = 0.2 and 8 classes
    assert not page.is_hidden("#targets-figure")  # the loss's guidance: SimLoss's weights per class
    shots(tab, "new-job")

    _refused_epochs(console, tab)

    page.fill("#f-training-epochs", "2")
    shown = page.text_content("#json-preview")
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/v1/jobs")) as sent:
        page.click("#submit")
    assert sent.value.post_data == shown  # what the preview shows is what is sent
    page.wait_for_url(f"{console.base}/ui/jobs/*")
    job_id = page.url.rsplit("/", 1)[1]
    body = json.loads(shown)
    assert body["classes"] == [str(d) for d in range(8)] and body["training"]["epochs"] == 2
    assert body["similarity"] == {"kind": "ordinal", "reduction_factor": 0.2, "cyclic": False}
    _check_stored(console, job_id, body)
    finished = console.stack.wait_status(job_id, "succeeded", "failed", timeout=180)
    assert finished["status"] == "succeeded", finished
    tab.wait("document.getElementById('job-status').textContent.includes('succeeded')", timeout=60_000)
    assert tab.problems(ignore=("422",)) == []  # the refused epochs only


def _check_stored(console, job_id: str, body: dict) -> None:
    """The API stored exactly the request the form sent: each part as the API normalises it (defaults
    filled in) and the request's canonical hash (equal only for equal requests)."""
    from core.db.jobs import request_hash
    from core.jobspec import JobCreate

    request = JobCreate.model_validate(body)
    normalised = request.model_dump(mode="json")
    job = api(console, "GET", f"/v1/jobs/{job_id}")
    assert job["dataset"] == body["dataset"]
    for part in ("classes", "similarity", "loss", "model", "training"):
        assert job["spec"][part] == normalised[part], part
    assert console.stack.job_row(job_id)["request_hash"] == request_hash(request)


def _csv(path, rows: int = 6000, features: int = 40) -> list[str]:
    rng = np.random.default_rng(3)
    labels = np.array(["cat", "dog", "eel"])[rng.integers(0, 3, rows)]
    x = rng.normal(size=(rows, features))
    header = ",".join(["label"] + [f"f{i}" for i in range(features)])
    lines = [header] + [
        lab + "," + ",".join(f"{v:.6f}" for v in row) for lab, row in zip(labels, x, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return sorted(set(labels.tolist()))


def test_an_upload_shows_progress_and_becomes_the_jobs_dataset(console, new_tab, tmp_path):
    classes = _csv(tmp_path / "pets.csv")
    assert (tmp_path / "pets.csv").stat().st_size > 2_000_000
    tab = new_tab(width=390)
    page = tab.page
    sign_in(tab, console.base, console.key_a, "/ui/new")
    page.set_input_files("#upload-file", str(tmp_path / "pets.csv"))
    page.fill("#upload-name", "pets")
    page.press("#upload-name", "Enter")  # the keyboard uploads
    tab.wait("document.getElementById('upload-status').textContent.includes(' is ready')", timeout=120_000)
    assert page.evaluate("document.getElementById('upload-progress').value") == 100
    assert int(page.get_attribute("#upload-progress", "data-events")) >= 1
    ours = [d for d in api(console, "GET", "/v1/datasets")["items"] if d["name"] == "pets"]
    assert len(ours) == 1 and ours[0]["status"] == "ready"
    dataset_id = ours[0]["id"]
    tab.wait(f"document.getElementById('dataset').value === {json.dumps(dataset_id)}")
    assert json.loads(page.text_content("#json-preview"))["dataset"] == dataset_id
    assert page.evaluate("[...document.querySelectorAll('#class-picker input')].map(b => b.value)") == classes
    shots(tab, "new-job-uploaded")
    assert tab.problems() == []

    other = new_tab()
    sign_in(other, console.base, console.key_b, "/ui/new")
    options = other.page.evaluate("[...document.querySelectorAll('#dataset option')].map(o => o.value)")
    assert "builtin:digits" in options and dataset_id not in options
    assert other.problems() == []


def _study_and_comparison(console) -> tuple[dict, dict]:
    tiny = {"dataset": "builtin:digits", "model": {"kind": "mlp", "hidden": [16]},
            "training": {"epochs": 1, "batch_size": 256, "seed": 3}}  # fmt: skip
    comp = api(console, "POST", "/v1/comparisons",
               json={**tiny, "similarity": {"kind": "ordinal"}, "seeds": 1,
                     "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}]})  # fmt: skip
    space = {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}
    study = api(console, "POST", "/v1/tuning",
                json={**tiny, "search_space": space, "objective": {"metric": "accuracy", "direction": "maximize"},
                      "trials": 2, "parallel": 1, "seed": 5})  # fmt: skip
    comp = wait_api(console, f"/v1/comparisons/{comp['id']}", lambda c: c["status"] in TERMINAL)
    study = wait_api(console, f"/v1/tuning/{study['id']}", lambda s: s["status"] in TERMINAL)
    assert comp["status"] == "succeeded" and study["status"] == "succeeded", (comp, study)
    return comp, study


def _report_frame(tab, ready: str) -> Any:
    """The framed report (a blob: document) once `ready` holds in it."""
    tab.wait("!document.getElementById('report-frame').hidden")
    deadline = time.monotonic() + 30
    while True:
        frames = [f for f in tab.page.frames if f.url.startswith("blob:")]
        if frames:
            frames[0].wait_for_function(f"() => ({ready})", timeout=30_000)
            return frames[0]
        assert time.monotonic() < deadline, "no report frame"
        tab.page.wait_for_timeout(100)


def test_comparisons_and_tuning_pages_list_them_and_show_their_reports(console, new_tab):
    comp, study = _study_and_comparison(console)
    tab = new_tab()
    page = tab.page
    sign_in(tab, console.base, console.key_a, "/ui/comparisons")
    tab.wait(f"document.querySelector('#comparisons a[href=\"/ui/comparisons/{comp['id']}\"]') !== null")
    assert "succeeded" in page.text_content("#comparisons tbody")
    shots(tab, "comparisons")
    page.click(f"a[href='/ui/comparisons/{comp['id']}']")
    page.wait_for_url(f"{console.base}/ui/comparisons/{comp['id']}")
    frame = _report_frame(tab, "document.body.dataset.ready === '1'")
    assert comp["id"] in frame.title()
    assert frame.evaluate("document.querySelectorAll('#summary tr').length") >= 2  # the report's own table
    assert (
        page.evaluate("document.querySelectorAll('#children tbody tr').length") == len(comp["children"]) == 2
    )
    shots(tab, "comparison")

    page.goto(f"{console.base}/ui/tuning")
    tab.wait(f"document.querySelector('#studies a[href=\"/ui/tuning/{study['id']}\"]') !== null")
    shots(tab, "tuning")
    page.click(f"a[href='/ui/tuning/{study['id']}']")
    page.wait_for_url(f"{console.base}/ui/tuning/{study['id']}")
    tab.wait("document.querySelectorAll('#trials tbody tr').length === 2")
    frame = _report_frame(tab, "document.body.textContent.includes('Optimisation history')")
    assert frame.evaluate("document.querySelectorAll('img.plot').length") >= 1
    best = study["best_trial"]
    assert f"{best['value']:.4f}" in page.text_content("#best")
    assert page.get_attribute("#best a", "href") == f"/ui/jobs/{best['job_id']}"
    shots(tab, "tuning-study")
    assert tab.problems() == []

    other = new_tab()
    sign_in(other, console.base, console.key_b, "/ui/comparisons")
    other.wait("!document.getElementById('list-empty').hidden")
    for path in (f"/ui/comparisons/{comp['id']}", f"/ui/tuning/{study['id']}"):
        other.page.goto(console.base + path)
        other.wait("!document.getElementById('not-found').hidden")
    assert other.problems(ignore=("404",)) == []


def test_the_form_offers_every_kind_the_specs_have_with_their_bounds():
    from api.ui.console_render import form_catalog
    from core.losses.spec import HEAD_LOSS_KINDS, LOSS_KINDS
    from core.similarity.spec import SIMILARITY_KINDS

    catalog = form_catalog()
    assert [k["kind"] for k in catalog["similarity"]] == list(SIMILARITY_KINDS)
    assert sorted(k["kind"] for k in catalog["loss"]) == sorted(LOSS_KINDS + HEAD_LOSS_KINDS)
    groups = next(k for k in catalog["similarity"] if k["kind"] == "groups")["fields"]
    within = next(f for f in groups if f["name"] == "within")
    assert within["required"] and (within["minimum"], within["maximum"]) == (0.0, 1.0)
    assert next(f for f in groups if f["name"] == "groups")["widget"] == "json"
    epochs = next(f for f in catalog["training"] if f["name"] == "epochs")
    assert (epochs["widget"], epochs["default"], epochs["minimum"]) == ("integer", 10, 1)
    hidden = next(f for f in catalog["model"] if f["name"] == "hidden")
    assert (hidden["widget"], hidden["default"]) == ("int_list", [128])


def test_the_report_pages_allow_exactly_the_reports_inline_scripts():
    import base64
    import hashlib
    import re

    from api.ui import PAGE_HEADERS, render_report_page
    from api.ui.console_render import report_page_headers

    html = render_report_page({"classes": ["a"]}, {"id": "x", "status": "succeeded"})
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert len(scripts) == 3  # the chart library, charts.js, report.js
    policy = dict(
        p.strip().split(" ", 1) for p in report_page_headers()["Content-Security-Policy"].split(";")
    )
    for body in scripts:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy["script-src"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    console = dict(p.strip().split(" ", 1) for p in PAGE_HEADERS["Content-Security-Policy"].split(";"))
    assert {k: v for k, v in policy.items() if k not in ("script-src", "style-src")} == {
        k: v for k, v in console.items() if k not in ("script-src", "style-src")
    }


def test_the_pages_label_every_control_and_run_no_inline_script():
    import re

    from api.ui import console_render as r

    pages = {
        "new": r.render_new_job_page(),
        "comparisons": r.render_comparisons_page(),
        "comparison": r.render_comparison_page('"><b>x</b>'),
        "tuning": r.render_tuning_list_page(),
        "study": r.render_tuning_study_page('"><b>x</b>'),
    }
    for name, html in pages.items():
        ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([\w-]+)"', html))
        assert ids == set(re.findall(r'<label for="([\w-]+)"', html)), name
        scripts = re.findall(r"<script( [^>]*)?>", html)
        assert scripts[0] == ' type="application/json" id="config"' and all(
            ' src="/static/' in s for s in scripts[1:]
        )
        assert "<b>x</b>" not in html, name
