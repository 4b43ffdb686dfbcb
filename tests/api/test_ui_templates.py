"""Tests of api.ui without a browser: what the templates put in a page, how data is escaped, how static
files are inlined, linked with a version and served (the pages in Chromium: tests/compare/test_pages.py).

    .venv/bin/python -m pytest tests/api/test_ui_templates.py -q
"""

from __future__ import annotations

import hashlib
import json
import re

import jinja2
import pytest

from api.ui import STATIC_DIR, assets, json_for_script, render, render_jobs_page, render_report_page

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


def test_jobs_page_links_versioned_static_files():
    html = render_jobs_page(static_base="/assets/", api_base="/api/v9")
    assert _json_scripts(html) == {"config": {"api_base": "/api/v9"}}
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert [link for link in links if link != "#"] == [
        f"/assets/{name}?v={hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]}"
        for name in ("base.css", "jobs.css", "chart.umd.min.js", "charts.js", "jobs.js")
    ]
    hostile = render_jobs_page(static_base='/s"><script>alert(1)</script>')
    assert "<script>alert" not in hostile and "/s&#34;&gt;&lt;script&gt;" in hostile


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


def test_static_files_and_jobs_page_are_served(embedded):
    client = embedded.client
    page = client.get("/ui/jobs")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    links = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(links) == 5
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
