"""The Delete buttons of the comparison and tuning-study pages in headless Chromium (Playwright,
`tests/browser.py`) against a real API and a real worker (`tests/ui/conftest.py`'s `console`).

One long job holds the one worker, so what is made after it stays queued:
- a comparison whose children are queued is running: its page has no Delete, and the API refuses with
  409; cancelled, the page shows Delete live; dismissing the confirm keeps it, accepting (by keyboard)
  deletes it (the API answers 404) and lands on the comparisons list with the notice, once, and without it;
- a tuning study is running, then cancelling (its driver waits behind the long job): no Delete; once the
  worker is free it is cancelled and Delete appears; accepting deletes it and lands on the tuning list;
- a succeeded comparison that a queued job warm-starts from: accepting gets the API's 409, whose message
  (naming both jobs) shows beside the buttons, and the comparison is kept;
- another tenant sees "not found" (no Delete) and its DELETE answers 404; the templates carry the button
  hidden.

    .venv/bin/pytest -x -q tests/ui/test_parent_delete_pages.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from browser import READY, shots, sign_in
from worker_testlib import SLOW_MODEL, job_body

from api.ui import render_console_page

DELETE_SHOWN = "!document.getElementById('delete').hidden"
TINY = {"dataset": "builtin:digits", "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 1, "batch_size": 256, "seed": 3}}  # fmt: skip


def call(console, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {key or console.key_a}"}
    return console.stack.client.request(method, path, headers=headers, **kw)


def made(console, path: str, body: dict) -> dict:
    r = call(console, "POST", path, json=body)
    assert r.status_code in (201, 202), r.text
    return r.json()


def wait_api(console, path: str, done: Callable[[dict], bool], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = call(console, "GET", path).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"{path}: {body.get('status')}\n{console.stack.logs()}"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def blocker(console):
    """A long job that holds the one worker (concurrency 1); the tuning test cancels it."""
    job_id = console.submit(job_body(epochs=300, model=SLOW_MODEL, seed=9))
    console.stack.wait_status(job_id, "running", timeout=120)
    yield job_id
    console.stack.cancel(job_id)


def other_tenant_is_refused(console, new_tab, path: str) -> None:
    other = new_tab()
    sign_in(other, console.base, console.key_b, f"/ui{path}")
    other.wait("!document.getElementById('not-found').hidden")
    assert other.page.is_hidden("#delete") and other.page.is_hidden("#detail")
    assert call(console, "DELETE", f"/v1{path}", key=console.key_b).status_code == 404
    assert other.problems(ignore=("404",)) == []


def delete_by_keyboard(console, tab, path: str, the_id: str, list_path: str) -> None:
    """Accept the confirm with Enter on #delete; the list shows the notice once and not the item."""
    page = tab.page
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    page.focus("#delete")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.base}{list_path}")
    tab.wait(READY)
    assert len(asked) == 1 and the_id in asked[0] and "jobs and their files" in asked[0]
    assert the_id in page.text_content("#list-notice")
    assert page.locator(f"a[href='{path}']").count() == 0
    assert call(console, "GET", f"/v1{path.removeprefix('/ui')}").status_code == 404
    page.reload()  # the notice is shown once
    tab.wait(READY)
    assert page.locator("#list-notice").count() == 0


@pytest.mark.parametrize("template", ["comparison.html", "tuning_study.html"])
def test_the_templates_carry_a_hidden_delete_button(template):
    html = render_console_page(template, title="t", config={"comparison_id": "x", "study_id": "x"})
    actions = html.split('role="group"', 1)[1].split("</div>", 1)[0]
    assert '<button type="button" id="delete" class="danger" hidden>Delete</button>' in actions
    assert actions.index('id="cancel"') < actions.index('id="delete"')


def test_a_comparison_shows_delete_once_cancelled_and_is_deleted(console, new_tab, blocker):
    body = {**TINY, "similarity": {"kind": "ordinal"}, "seeds": 1,
            "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}]}  # fmt: skip
    comp = made(console, "/v1/comparisons", body)
    path = f"/comparisons/{comp['id']}"
    tab = new_tab()
    page = tab.page
    sign_in(tab, console.base, console.key_a, f"/ui{path}")
    tab.wait("document.querySelectorAll('#children tbody tr').length === 2")
    assert "running" in page.text_content("#item-status")
    assert page.is_hidden("#delete") and page.is_enabled("#cancel")
    refused = call(console, "DELETE", f"/v1{path}")
    assert refused.status_code == 409 and "cancel it first" in refused.json()["error"]["message"]
    other_tenant_is_refused(console, new_tab, path)

    assert call(console, "POST", f"/v1{path}/cancel").status_code == 202  # queued children: at once
    tab.wait(DELETE_SHOWN)  # the page polls: Delete appears without a reload
    assert "cancelled" in page.text_content("#item-status") and page.is_disabled("#cancel")
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#delete")
    page.wait_for_timeout(300)
    assert len(asked) == 1 and "2 child jobs" in asked[0]
    assert page.url == f"{console.base}/ui{path}" and call(console, "GET", f"/v1{path}").status_code == 200
    shots(tab, "comparison-delete")
    delete_by_keyboard(console, tab, f"/ui{path}", comp["id"], "/ui/comparisons")
    for child in comp["children"]:
        assert call(console, "GET", f"/v1/jobs/{child['job_id']}").status_code == 404
    assert tab.problems() == []


def test_a_tuning_study_shows_delete_once_it_has_ended_and_is_deleted(console, new_tab, blocker):
    space = {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}
    body = {**TINY, "search_space": space, "objective": {"metric": "accuracy", "direction": "maximize"},
            "trials": 2, "parallel": 1, "seed": 5}  # fmt: skip
    study = made(console, "/v1/tuning", body)
    path = f"/tuning/{study['id']}"
    tab = new_tab(width=390)
    page = tab.page
    sign_in(tab, console.base, console.key_a, f"/ui{path}")
    assert "running" in page.text_content("#item-status")
    assert page.is_hidden("#delete") and page.is_enabled("#cancel")
    other_tenant_is_refused(console, new_tab, path)

    page.click("#cancel")  # its driver waits behind the long job: cancelling, still no Delete
    tab.wait("document.getElementById('item-status').textContent.includes('cancelling')")
    assert page.is_hidden("#delete")
    assert call(console, "DELETE", f"/v1{path}").status_code == 409
    console.stack.cancel(blocker)
    tab.wait(DELETE_SHOWN, timeout=90_000)
    assert "cancelled" in page.text_content("#item-status")
    tab.wait(
        "document.getElementById('report-note').textContent.endsWith('(offline page).')"
    )  # the final report
    assert tab.fits_width()
    tab.screenshot("console-tuning-delete-390.png")
    delete_by_keyboard(console, tab, f"/ui{path}", study["id"], "/ui/tuning")
    assert tab.problems() == []


def test_a_comparison_a_queued_job_warm_starts_from_shows_the_conflict_and_is_kept(console, new_tab):
    body = {**TINY, "seeds": 1, "variants": [{"name": "ce", "loss": {"kind": "cross_entropy"}}]}
    comp = made(console, "/v1/comparisons", body)
    path = f"/comparisons/{comp['id']}"
    comp = wait_api(console, f"/v1{path}", lambda c: c["status"] == "succeeded")
    source = comp["children"][0]["job_id"]
    held = console.submit(job_body(epochs=300, model=SLOW_MODEL, seed=11))
    console.stack.wait_status(held, "running", timeout=120)
    warm = console.submit({**TINY, "model": {**TINY["model"], "init": {"from_job": source}}})
    try:
        tab = new_tab()
        page = tab.page
        sign_in(tab, console.base, console.key_a, f"/ui{path}")
        tab.wait(DELETE_SHOWN)
        page.once("dialog", lambda d: d.accept())
        page.click("#delete")
        tab.wait("document.getElementById('item-message').textContent.includes('warm-starts')")
        message = page.text_content("#item-message")
        assert warm in message and source in message
        assert page.get_attribute("#item-message", "class") == "error"
        assert page.url == f"{console.base}/ui{path}" and page.is_enabled("#delete")
        assert call(console, "GET", f"/v1{path}").status_code == 200
        url = f"{console.base}/v1{path}"
        refused = (f"http 409: DELETE {url}", f"status of 409 (Conflict) {url}")
        assert tab.problems(ignore=refused) == [] and len(tab.problems()) == 2
    finally:
        console.stack.cancel(warm)
        console.stack.cancel(held)
