"""Tests of api.ui without a browser: what the templates put in a page, how data is escaped, how static
files are inlined, linked with a version and served, the console pages' frame and headers (the pages in
Chromium: tests/compare/test_pages.py, tests/ui/).

    .venv/bin/python -m pytest tests/api/test_ui_templates.py -q
"""

from __future__ import annotations

import hashlib
import json
import re

import jinja2
import pytest

from api.ui import (
    PAGE_HEADERS,
    STATIC_DIR,
    assets,
    json_for_script,
    render,
    render_console_page,
    render_report_page,
)

EVIL = "</script><!-- <img src=x onerror=\"window.__pwned=1\"> & 'quoted' \u2028"
SCRIPT = re.compile(r'<script(?: type="application/json" id="([\w-]+)")?>(.*?)</script>', re.DOTALL)


def _json_scripts(html: str) -> dict[str, object]:
    return {m[1]: json.loads(m[2]) for m in SCRIPT.finditer(html) if m[1]}


def test_json_for_script_escapes_markup_and_round_trips():
    text = json_for_script({"k": EVIL, "n": [1, 2.5, None]})
    assert not set("<>&'") & set(text)
    assert json.loads(text) == {"k": EVIL, "n": [1, 2.5, None]}
    assert json_for_script({"x": object}).startswith('{"x":"')  # unknown values: their text
    with pytest.raises(ValueError):
        json_for_script({"x": float("nan")})


def test_report_page_is_one_offline_file_with_the_data_as_json():
    report = {"classes": [EVIL], "nested": {"note": EVIL}, "n": 3}
    meta = {"id": 'c<1>"', "metadata": {"note": EVIL}}
    html = render_report_page(report, meta)
    assert _json_scripts(html) == {"report-data": report, "report-meta": meta}
    assert EVIL not in html and '__pwned=1"' not in html  # the data appears only escaped
    assert html.count("<script") == html.count("</script>") == 5  # nothing closes a script early
    markup = SCRIPT.sub("<script></script>", html)
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|\bhref=", markup)  # nothing to fetch
    assert "<title>simtrain comparison c&lt;1&gt;&#34;</title>" in html
    for name in ("chart.umd.min.js", "charts.js", "report.js"):
        assert str(assets.inline(name)) in html
    assert "sourceMappingURL" not in html
    assert str(assets.inline("base.css")) in html and "jobs.css" not in html
    assert render_report_page({}, {}).count("<title>simtrain comparison </title>") == 1


def _version(name: str) -> str:
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def test_console_pages_link_versioned_static_files_and_carry_config():
    html = render_console_page(
        "job.html", title="t", config={"job_id": EVIL}, static_base="/assets/", api_base="/api/v9"
    )
    assert _json_scripts(html) == {"config": {"api_base": "/api/v9", "job_id": EVIL}}
    assert EVIL not in html
    links = re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)
    assert links == [
        f"/assets/{name}?v={_version(name)}"
        for name in ("base.css", "console.css", "console.js", "chart.umd.min.js", "charts.js", "job.js")
    ]
    # the nav, the skip link and the one <main> every console page shares
    nav = re.findall(r'<li><a href="(/ui/[^"]+)"', html)
    assert nav == ["/ui/jobs", "/ui/new", "/ui/comparisons", "/ui/tuning", "/ui/signin?signout=1"]
    assert html.count("<main") == 1 and 'href="#main"' in html
    # scripts: the JSON config block and files only, nothing inline to run
    assert re.findall(r"<script( [^>]*)?>", html) == [
        ' type="application/json" id="config"', *[f' src="/assets/{n}?v={_version(n)}"' for n in
                                               ("console.js", "chart.umd.min.js", "charts.js", "job.js")]
    ]  # fmt: skip
    hostile = render_console_page("jobs.html", title="t", static_base='/s"><script>alert(1)</script>')
    assert "<script>alert" not in hostile and "/s&#34;&gt;&lt;script&gt;" in hostile


def test_every_label_names_an_input_of_the_console_pages():
    for template in ("signin.html", "jobs.html", "job.html"):
        html = render_console_page(template, title="t", config={"job_id": "x"})
        ids = set(re.findall(r'<(?:input|select|textarea)[^>]*\bid="([\w-]+)"', html))
        labelled = set(re.findall(r'<label for="([\w-]+)"', html))
        assert ids == labelled, template


def test_inline_refuses_a_file_that_would_close_its_element(tmp_path, monkeypatch):
    (tmp_path / "ok.js").write_text('const a = "<\\/script>";\n//# sourceMappingURL=ok.js.map\n')
    (tmp_path / "bad.js").write_text('const a = "</SCRIPT>";')
    (tmp_path / "bad.css").write_text("a::after { content: '</style>' }")
    monkeypatch.setattr(assets, "STATIC_DIR", tmp_path)
    for cached in (assets._read, assets.inline, assets._version):
        cached.cache_clear()
    try:
        assert str(assets.inline("ok.js")) == 'const a = "<\\/script>";'
        for name in ("bad.js", "bad.css"):
            with pytest.raises(ValueError, match="closing"):
                assets.inline(name)
        with pytest.raises(FileNotFoundError):
            assets.inline("../ok.js")
    finally:
        monkeypatch.undo()
        for cached in (assets._read, assets.inline, assets._version):
            cached.cache_clear()


def test_templates_refuse_undefined_values():
    with pytest.raises(jinja2.UndefinedError):
        render._env.get_template("report.html").render(title="t", report={})  # no meta


def test_console_pages_and_static_files_are_served(embedded):
    client = embedded.client
    for path in ("/ui/signin", "/ui/jobs", "/ui/jobs/0f0f0f0f-0000-4000-8000-000000000000"):
        page = client.get(path)
        assert page.status_code == 200, path
        for header, value in PAGE_HEADERS.items():
            assert page.headers[header] == value, (path, header)
        assert "script-src 'self';" in page.headers["content-security-policy"]
    assert client.get("/ui/jobs/" + "x" * 65).status_code == 422
    assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/jobs"
    page = client.get("/ui/jobs")
    links = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(links) == 4  # base.css, console.css, console.js, jobs.js
    types = {".js": "text/javascript", ".css": "text/css"}
    for link in links:
        r = client.get(link)
        name = link.split("?")[0].rsplit("/", 1)[1]
        assert r.status_code == 200 and r.content == (STATIC_DIR / name).read_bytes()
        assert r.headers["content-type"].startswith(types[name[name.rindex(".") :]])
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/static/chart.js.LICENSE.md").status_code == 200
    for missing in ("/static/nope.js", "/static/..%2Fui%2F__init__.py", "/static/%2e%2e"):
        assert client.get(missing).status_code == 404
