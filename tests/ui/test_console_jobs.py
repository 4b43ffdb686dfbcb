"""The console's sign-in, jobs list and job page in headless Chromium (Playwright, `tests/browser.py`)
against a real API and a real worker (`tests/ui/conftest.py`): sign in with the keyboard (a wrong key is
refused), a job finishes live on its page with curves and a confusion matrix and its model and a
checkpoint download, a long job is cancelled and another paused and resumed from their pages, another
tenant sees "Job not found", the list filters, searches and pages. Every page is checked at 1280 and
390 px: screenshots in `test-artifacts/`, no sideways overflow, no console error.

    .venv/bin/pytest -x -q tests/ui/test_console_jobs.py
"""

from __future__ import annotations

import struct

import numpy as np
from browser import READY, shots, sign_in
from worker_testlib import SLOW_MODEL, SMALL_MODEL, job_body


def focused(tab) -> str:
    return tab.page.evaluate("document.activeElement ? document.activeElement.id : ''")


def test_sign_in_by_keyboard_refuses_a_wrong_key_and_keeps_the_right_one(console, new_tab):
    tab = new_tab()
    page = tab.page
    page.goto(f"{console.base}/ui/jobs")  # nothing kept: off to sign in, coming back afterwards
    page.wait_for_url(f"{console.base}/ui/signin?next=%2Fui%2Fjobs")
    tab.wait(READY)
    page.evaluate("document.activeElement.blur()")
    for _ in range(12):  # skip link, brand, nav links, then the key
        page.keyboard.press("Tab")
        if focused(tab) == "api-key":
            break
    assert focused(tab) == "api-key"
    page.keyboard.type("st_not-a-key")
    page.keyboard.press("Tab")
    assert focused(tab) == "signin-submit"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    tab.wait("document.getElementById('signin-message').textContent.includes('did not accept')")
    assert page.get_attribute("#api-key", "aria-invalid") == "true"
    assert page.evaluate("sessionStorage.getItem('simtrain.apiKey')") is None
    shots(tab, "signin-refused")
    page.fill("#api-key", console.key_a)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.base}/ui/jobs")
    assert page.evaluate("sessionStorage.getItem('simtrain.apiKey')") == console.key_a
    assert page.get_attribute(".topbar nav a[href='/ui/jobs']", "aria-current") == "page"
    # sign out: the key is gone and the pages ask for it again
    page.click("#sign-out")
    page.wait_for_url(f"{console.base}/ui/signin")
    assert page.evaluate("sessionStorage.getItem('simtrain.apiKey')") is None
    page.goto(f"{console.base}/ui/jobs/0f0f0f0f-0000-4000-8000-000000000000")
    page.wait_for_url(f"{console.base}/ui/signin?next=*")
    assert tab.problems(ignore=("/v1/jobs?limit=1",)) == []  # the refused key's 401 only


def _safetensors_names(data: bytes) -> list[str]:
    from safetensors.numpy import load

    (header_len,) = struct.unpack("<Q", data[:8])
    assert data[8:9] == b"{" and 8 + header_len <= len(data)
    tensors = load(data)
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    return sorted(tensors)


def test_a_job_finishes_live_on_its_page_and_its_model_downloads(console, new_tab):
    body = job_body(epochs=5, model=SLOW_MODEL, seed=3)
    body["metadata"] = {"name": "console-live"}
    job_id = console.submit(body)
    tab = new_tab()
    page = tab.page
    sign_in(tab, console.base, console.key_a)
    row = f"#jobs-body tr[data-job='{job_id}']"
    page.wait_for_selector(row)
    page.fill("#search", "console-live")  # the search keeps only that job
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 1")
    assert "q=console-live" in page.url
    page.click(f"{row} a")
    page.wait_for_url(f"{console.base}/ui/jobs/{job_id}")
    tab.wait(READY)
    first = page.evaluate("document.body.dataset.status")
    assert first in ("queued", "running"), first  # the page opened before the end: what follows is live
    tab.wait("document.body.dataset.status === 'succeeded'", timeout=120_000)
    tab.wait("!document.getElementById('confusion-box').hidden")
    tab.wait("document.querySelectorAll('#artifacts tbody tr').length > 0")
    labels = page.evaluate("Chart.getChart(document.getElementById('chart-loss')).data.labels")
    assert labels == [1, 2, 3, 4, 5]
    val_loss = page.evaluate("Chart.getChart(document.getElementById('chart-loss')).data.datasets[1].data")
    assert all(isinstance(v, float) for v in val_loss)
    assert any("/events/stream" in u for u in tab.requested)  # the curves came over the event stream
    assert page.evaluate("document.querySelectorAll('#events tbody tr[data-kind=epoch]').length") == 5
    metrics = dict(
        page.evaluate(
            "Array.from(document.querySelectorAll('#final-metrics tbody tr'))"
            ".map(tr => [tr.cells[0].textContent, tr.cells[1].textContent])"
        )
    )
    api_job = console.job(job_id)
    assert float(metrics["accuracy"]) == round(api_job["final_metrics"]["accuracy"], 4)
    cm = page.evaluate(
        "Array.from(document.querySelectorAll('#confusion-table tbody tr'))"
        ".map(tr => Array.from(tr.querySelectorAll('td')).map(td => Number(td.textContent)))"
    )
    assert cm == api_job["final_metrics"]["confusion_matrix"]
    assert page.evaluate("document.getElementById('confusion').width") > 100
    assert page.is_disabled("#cancel") and page.is_disabled("#pause") and page.is_disabled("#resume")
    # the model: fetched with the key, saved from a Blob, the same bytes as the API's
    with page.expect_download() as info:
        page.click("#artifacts tr[data-artifact='model.safetensors'] button")
    download = info.value
    assert download.suggested_filename == "model.safetensors"
    data = open(download.path(), "rb").read()  # noqa: SIM115
    assert data == console.stack.download(job_id, "model.safetensors")
    assert _safetensors_names(data)
    # the newest kept checkpoint's weights, from the checkpoints table (GET /v1/jobs/{id}/checkpoints)
    tab.wait("document.querySelectorAll('#checkpoints tbody tr').length > 0")
    epoch = page.get_attribute("#checkpoints tbody tr", "data-epoch")
    with page.expect_download() as info:
        page.click(f"#checkpoints tr[data-epoch='{epoch}'] button[data-name$='.safetensors']")
    weights = open(info.value.path(), "rb").read()  # noqa: SIM115
    url = f"/v1/jobs/{job_id}/checkpoints/{epoch}/model.safetensors"
    r = console.stack.client.get(url, headers=console.stack.headers)
    assert r.status_code == 200 and weights == r.content
    assert _safetensors_names(weights) == _safetensors_names(data)
    shots(tab, "job-succeeded")
    page.goto(f"{console.base}/ui/jobs")
    page.wait_for_selector(f"{row}[data-status=succeeded]")
    shots(tab, "jobs")
    assert tab.problems() == []


def _open_running(console, new_tab, name: str):
    body = job_body(epochs=300, model=SLOW_MODEL, seed=4)
    body["metadata"] = {"name": name}
    job_id = console.submit(body)
    tab = new_tab()
    sign_in(tab, console.base, console.key_a, f"/ui/jobs/{job_id}")
    tab.wait("document.body.dataset.status === 'running'", timeout=120_000)
    tab.wait("Chart.getChart(document.getElementById('chart-loss')).data.labels.length >= 1", timeout=60_000)
    return job_id, tab


def test_cancel_a_long_job_from_its_page(console, new_tab):
    job_id, tab = _open_running(console, new_tab, "console-cancel")
    page = tab.page
    assert page.is_enabled("#cancel") and page.is_enabled("#pause") and page.is_disabled("#resume")
    page.focus("#cancel")
    page.keyboard.press("Enter")
    tab.wait("document.body.dataset.status === 'cancelled'", timeout=60_000)
    assert console.job(job_id)["status"] == "cancelled"
    assert page.is_disabled("#cancel") and page.is_disabled("#pause")
    assert "cancel" in page.text_content("#events tbody").lower()
    assert tab.problems() == []


def test_pause_and_resume_from_its_page(console, new_tab):
    job_id, tab = _open_running(console, new_tab, "console-pause")
    page = tab.page
    page.click("#pause")
    tab.wait("document.body.dataset.status === 'paused'", timeout=60_000)
    assert console.job(job_id)["status"] == "paused"
    assert page.is_enabled("#resume") and page.is_disabled("#pause") and page.is_enabled("#cancel")
    epoch_paused = console.job(job_id)["progress"]["epoch"]
    shots(tab, "job-paused")
    page.click("#resume")
    tab.wait("document.body.dataset.status === 'running'", timeout=120_000)
    # it goes on from its checkpoint: the curves grow past the pause
    grown = f"Chart.getChart(document.getElementById('chart-loss')).data.labels.length > {epoch_paused}"
    tab.wait(grown, timeout=60_000)
    page.click("#cancel")  # frees the worker
    tab.wait("document.body.dataset.status === 'cancelled'", timeout=60_000)
    assert tab.problems() == []


def test_another_tenant_sees_not_found_and_none_of_the_jobs(console, new_tab):
    job_id = console.submit(job_body(epochs=1, model=SMALL_MODEL))
    tab = new_tab(width=390)
    page = tab.page
    sign_in(tab, console.base, console.key_b, f"/ui/jobs/{job_id}")
    tab.wait("!document.getElementById('not-found').hidden")
    assert page.text_content("#not-found h1") == "Job not found"
    assert page.is_hidden("#job")
    page.goto(f"{console.base}/ui/jobs")
    tab.wait(READY)
    assert page.evaluate("document.querySelectorAll('#jobs-body tr').length") == 0
    assert page.is_visible("#jobs-empty")
    assert tab.problems(ignore=(f"/v1/jobs/{job_id}",)) == []  # the 404 of tenant A's job only
    assert len(tab.problems()) > 0  # ... which was asked for and refused


def test_the_list_filters_by_status_searches_and_pages_with_more(console, new_tab):
    from core.db.models import Job

    key = console.new_tenant("tenant-c")
    ids = [console.submit(job_body(epochs=1, model=SMALL_MODEL), key=key) for _ in range(3)]
    for job_id in ids:
        console.stack.wait_status(job_id, "succeeded")
    with console.stack.Session() as s:  # one of them failed, as far as the list is concerned
        s.get(Job, ids[0]).status = "failed"
        s.commit()
    tab = new_tab(width=390)
    page = tab.page
    sign_in(tab, console.base, key, "/ui/jobs?limit=2")
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 2")
    assert page.is_visible("#more")
    page.click("#more")
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 3")
    assert page.is_hidden("#more")
    shown = page.evaluate("Array.from(document.querySelectorAll('#jobs-body tr')).map(tr => tr.dataset.job)")
    assert shown == ids[::-1]  # newest first, across the two pages
    page.select_option("#status-filter", "failed")
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 1")
    assert page.get_attribute("#jobs-body tr", "data-job") == ids[0]
    assert "status=failed" in page.url
    page.select_option("#status-filter", "")
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 2")
    page.fill("#search", ids[1][:8])
    tab.wait("document.querySelectorAll('#jobs-body tr').length === 1")
    assert page.get_attribute("#jobs-body tr", "data-job") == ids[1]
    page.fill("#search", "no-such-job")
    tab.wait("!document.getElementById('jobs-empty').hidden")
    assert tab.problems() == []
