"""Headless Chromium for the page tests, driven by Playwright: Debian's `/usr/bin/chromium`
(`scripts/install-chromium.sh`), never a downloaded browser (no `playwright install`).

    # conftest.py of a folder with page tests:
    from browser import browser, new_tab  # noqa: F401 - the fixtures

    def test_x(new_tab):
        tab = new_tab(width=390)                   # a fresh context (own sessionStorage), accepts downloads
        tab.page.goto(f"{base}/ui/jobs")
        tab.wait("document.body.dataset.ready === '1'")   # polls the expression until it is truthy
        tab.screenshot("jobs-390.png")             # into test-artifacts/ (git-ignored)
        assert tab.fits_width()                    # no horizontal overflow of the document
        assert tab.problems() == []                # console errors, page errors, failed requests

`wait(expression)` hands Playwright a function (`() => (expression)`): a plain string would be evaluated
with `eval` in the page, which the console's Content-Security-Policy refuses. `problems(ignore=...)` skips
the entries holding any of the given strings (an expected 401 or 404).
Without the browser the fixtures fail: they never skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "READY",
    "WIDTHS",
    "Tab",
    "browser",
    "new_tab",
    "shots",
    "sign_in",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WIDTHS = (1280, 390)  # the widths every console page is checked at
READY = "document.body.dataset.ready === '1'"  # what every console page sets once it has loaded


@dataclass
class Tab:
    """A page in its own browser context, with what went wrong on it (in the order it happened)."""

    page: Any
    events: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def watch(self) -> Tab:
        p = self.page
        p.on("console", self._console)
        p.on("pageerror", lambda exc: self.events.append(f"page error: {exc}"))
        p.on("requestfailed", self._failed)
        p.on("response", self._response)
        p.on("request", lambda r: self.requested.append(r.url))
        return self

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "assert"):
            where = (msg.location or {}).get("url", "")
            self.events.append(f"console.{msg.type}: {msg.text} {where}".rstrip())

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure and request.resource_type in ("fetch", "eventsource"):
            return  # a stream the page stopped itself (leaving the page, closing a stream)
        self.events.append(f"request failed: {request.method} {request.url} {failure}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.events.append(f"http {response.status}: {response.request.method} {response.url}")

    def wait(self, expression: str, timeout: float = 30_000) -> Any:
        """Wait until the JavaScript `expression` is truthy in the page (timeout in ms); its value."""
        return self.page.wait_for_function(f"() => ({expression})", timeout=timeout).json_value()

    def problems(self, ignore: Iterable[str] = ()) -> list[str]:
        """Console errors, uncaught page errors, failed requests and 4xx/5xx answers, less `ignore`."""
        skip = tuple(ignore)
        return [e for e in self.events if not any(s in e for s in skip)]

    def screenshot(self, name: str, full_page: bool = True) -> Path:
        path = ARTIFACTS / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def fits_width(self) -> bool:
        """Nothing overflows the viewport sideways (tables scroll inside their own box)."""
        return bool(self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, once per test module.

    Not once per session: while Playwright's sync API is started, the main thread counts as running an
    asyncio loop, so every later test that calls `asyncio.run` (the fetch and webhook tests) would fail."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-chromium.sh")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_tab(browser) -> Iterator[Callable[..., Tab]]:
    """`new_tab(width=1280, height=900) -> Tab`: a watched page in a fresh context (closed afterwards)."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
        context.set_default_timeout(30_000)
        contexts.append(context)
        return Tab(context.new_page()).watch()

    yield make
    for context in contexts:
        context.close()


def sign_in(tab: Tab, base: str, key: str, next_path: str = "/ui/jobs") -> None:
    """Sign in to the console at `base` with `key` (typed, then Enter) and land on `next_path`."""
    tab.page.goto(f"{base}/ui/signin?next={next_path}")
    tab.wait(READY)
    tab.page.fill("#api-key", key)
    tab.page.press("#api-key", "Enter")
    tab.page.wait_for_url(f"{base}{next_path}")
    tab.wait(READY)


def shots(tab: Tab, name: str) -> None:
    """A screenshot at each console width (`console-<name>-<width>.png`), each without sideways overflow
    of the document; back at 1280 px afterwards."""
    page = tab.page
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)  # the responsive charts follow the new width
        assert tab.fits_width(), f"{name}: wider than {width} px"
        assert tab.screenshot(f"console-{name}-{width}.png").stat().st_size > 5_000
    page.set_viewport_size({"width": 1280, "height": 900})
