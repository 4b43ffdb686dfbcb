"""The job page's Delete button in headless Chromium (Playwright, `tests/browser.py`) against a real API
and a real worker (`tests/ui/conftest.py`): a queued job's page has no Delete, which appears live when the
job ends; a finished job's Delete asks first (dismissing keeps the job), then deletes it (the API answers
404 for it) and lands on the jobs list with a notice and without the job; another tenant neither sees the
job nor deletes it; a job that a queued job warm-starts from answers 409, whose message shows beside the
buttons, and is kept. The template carries the button hidden.

    .venv/bin/pytest -x -q tests/ui/test_job_delete_page.py
"""

from __future__ import annotations

from browser import READY, shots, sign_in
from worker_testlib import SLOW_MODEL, SMALL_MODEL, job_body

from api.ui import render_console_page

DELETE_SHOWN = "!document.getElementById('delete').hidden"


def api_status(console, job_id: str, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key or console.key_a}"}
    return console.stack.client.get(f"/v1/jobs/{job_id}", headers=headers).status_code


def finished_job(console, name: str) -> str:
    body = job_body(epochs=1, model=SMALL_MODEL)
    body["metadata"] = {"name": name}
    job_id = console.submit(body)
    console.stack.wait_status(job_id, "succeeded")
    return job_id


def busy_worker(console) -> str:
    """A long job that holds the one worker (concurrency 1): jobs submitted afterwards stay queued."""
    blocker = console.submit(job_body(epochs=300, model=SLOW_MODEL, seed=9))
    console.stack.wait_status(blocker, "running", timeout=120)
    return blocker


def test_the_job_template_carries_a_hidden_delete_button():
    html = render_console_page("job.html", title="t", config={"job_id": "x"})
    assert '<button type="button" id="delete" class="danger" hidden>Delete</button>' in html
    actions = html.split('role="group" aria-label="Job actions">', 1)[1].split("</div>", 1)[0]
    assert actions.index('id="cancel"') < actions.index('id="delete"')


def test_a_queued_job_has_no_delete_until_it_ends(console, new_tab):
    blocker = busy_worker(console)
    job_id = console.submit(job_body(epochs=1, model=SMALL_MODEL))
    tab = new_tab()
    page = tab.page
    sign_in(tab, console.base, console.key_a, f"/ui/jobs/{job_id}")
    assert page.evaluate("document.body.dataset.status") == "queued"
    assert page.is_hidden("#delete")
    assert page.is_enabled("#cancel")
    console.stack.cancel(blocker)  # the worker takes the job: the page follows it to its end
    tab.wait("document.body.dataset.status === 'succeeded'", timeout=120_000)
    tab.wait(DELETE_SHOWN)
    assert page.is_visible("#delete") and page.is_enabled("#delete")
    assert api_status(console, job_id) == 200  # shown, not pressed
    assert tab.problems() == []


def test_a_finished_job_is_deleted_after_a_confirm_and_leaves_the_list(console, new_tab):
    job_id = finished_job(console, "console-delete")
    other = new_tab()  # another tenant: not found, nothing to delete, and its DELETE is a 404
    sign_in(other, console.base, console.key_b, f"/ui/jobs/{job_id}")
    other.wait("!document.getElementById('not-found').hidden")
    assert other.page.is_hidden("#delete")
    headers_b = {"Authorization": f"Bearer {console.key_b}"}
    assert console.stack.client.delete(f"/v1/jobs/{job_id}", headers=headers_b).status_code == 404
    assert api_status(console, job_id) == 200

    tab = new_tab()
    page = tab.page
    sign_in(tab, console.base, console.key_a, f"/ui/jobs/{job_id}")
    tab.wait(DELETE_SHOWN)
    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#delete")
    page.wait_for_timeout(300)
    assert len(asked) == 1 and job_id in asked[0]
    assert page.url == f"{console.base}/ui/jobs/{job_id}" and api_status(console, job_id) == 200
    shots(tab, "job-delete")
    page.once("dialog", lambda d: d.accept())
    page.focus("#delete")  # by keyboard, like the other buttons
    page.keyboard.press("Enter")
    page.wait_for_url(f"{console.base}/ui/jobs")
    tab.wait(READY)
    assert job_id in page.text_content("#jobs-notice")
    assert page.locator(f"#jobs-body tr[data-job='{job_id}']").count() == 0
    assert api_status(console, job_id) == 404
    page.reload()  # the notice is shown once
    tab.wait(READY)
    assert page.locator("#jobs-notice").count() == 0
    assert tab.problems() == []


def test_a_job_another_job_warm_starts_from_shows_the_conflict_and_is_kept(console, new_tab):
    source = finished_job(console, "console-delete-source")
    blocker = busy_worker(console)
    body = job_body(epochs=1, model=dict(SMALL_MODEL, init={"from_job": source}))
    warm = console.submit(body)
    try:
        assert console.job(warm)["status"] == "queued"
        tab = new_tab(width=390)
        page = tab.page
        sign_in(tab, console.base, console.key_a, f"/ui/jobs/{source}")
        tab.wait(DELETE_SHOWN)
        page.once("dialog", lambda d: d.accept())
        page.click("#delete")
        tab.wait("document.getElementById('job-message').textContent.includes('warm-starts')")
        message = page.text_content("#job-message")
        assert warm in message and source in message
        assert page.get_attribute("#job-message", "class") == "error"
        assert page.url == f"{console.base}/ui/jobs/{source}"
        assert page.is_enabled("#delete")
        assert api_status(console, source) == 200
        assert tab.fits_width()
        tab.screenshot("console-job-delete-409-390.png")
        url = f"{console.base}/v1/jobs/{source}"
        refused = (f"http 409: DELETE {url}", f"status of 409 (Conflict) {url}")
        assert tab.problems(ignore=refused) == []
        assert len(tab.problems()) == 2  # the refused DELETE itself (its answer, the browser's log line)
    finally:
        console.stack.cancel(warm)
        console.stack.cancel(blocker)
