"""The simtrain pages rendered from Jinja2 templates (`api/ui/templates/`, autoescaped, StrictUndefined).

    html = render_report_page(report, meta)      # one self-contained, offline HTML file
    html = render_tuning_report(meta, data)      # a tuning study's report (core.tuning.report), offline too
    page = render_console_page("job.html", title="simtrain job", config={"job_id": job_id})

The report inlines its stylesheet, the chart library and its scripts, and carries the report and its
meta data as `<script type="application/json">` (`json_for_script`). A console page (the templates that
extend `base.html` and fill its `content` / `scripts` blocks) links its static files from `static_base`
(`static_url(name)` in the template) and carries `config` as the `#config` JSON: `api_base` and whatever
the page adds (`console.js` reads it). Values from the report or the API reach a page only as escaped JSON
data or through `textContent` in the scripts, never as markup. `PAGE_HEADERS` are the response headers of
a console page: no caching, no framing, and a Content-Security-Policy that allows scripts, styles and
connections from the API's own origin only (inline JSON data blocks are not scripts and need nothing).
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from api.ui.assets import asset_url, inline

__all__ = [
    "PAGE_HEADERS",
    "json_for_script",
    "render_console_page",
    "render_report_page",
    "render_tuning_report",
]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-src 'self' blob:; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


def json_for_script(data: Any) -> Markup:
    """Compact JSON safe inside <script type="application/json">: `<`, `>`, `&` and `'` escaped as \\u00XX.

    Non-finite floats are refused (ValueError); values JSON does not know are written as their text.
    """
    return htmlsafe_json_dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)


_env = Environment(
    loader=PackageLoader("api.ui", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_env.filters["json_script"] = json_for_script
_env.globals["inline"] = inline


def render_report_page(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """The comparison report page, self-contained: stylesheet, chart library, scripts and data inlined."""
    title = f"simtrain comparison {meta.get('id', '')}"
    return _env.get_template("report.html").render(title=title, report=report, meta=meta)


def render_tuning_report(meta: dict[str, Any], data: dict[str, Any]) -> str:
    """A tuning study's report page (tuning.html), self-contained: `data` is `core.tuning.report.study_report`."""
    title = f"simtrain tuning {meta.get('id', '')}"
    return _env.get_template("tuning.html").render(title=title, meta=meta, data=data)


def render_console_page(
    template: str,
    *,
    title: str,
    config: dict[str, Any] | None = None,
    static_base: str = "/static",
    api_base: str = "/v1",
    **context: Any,
) -> str:
    """A console page: `template` extends base.html (nav, console.css, console.js and `#config`).

    `config` is merged over `{"api_base": api_base}` into the page's `#config` JSON; `context` goes to
    the template as it is (autoescaped).
    """
    return _env.get_template(template).render(
        title=title,
        config={"api_base": api_base, **(config or {})},
        static_url=lambda name: asset_url(static_base, name),
        **context,
    )
