"""The simtrain pages rendered from Jinja2 templates (`api/ui/templates/`, autoescaped, StrictUndefined).

    html = render_report_page(report, meta)      # one self-contained, offline HTML file
    page = render_jobs_page(static_base="/static", api_base="/v1")

The report inlines its stylesheet, the chart library and its scripts, and carries the report and its
meta data as `<script type="application/json">` (`json_for_script`); the jobs page links its static files
from `static_base`. Values from the report or the API reach a page only as escaped JSON data or through
`textContent` in the scripts, never as markup.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from api.ui.assets import asset_url, inline

__all__ = ["json_for_script", "render_jobs_page", "render_report_page"]


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


def render_jobs_page(*, static_base: str = "/static", api_base: str = "/v1") -> str:
    """The jobs page (list, live progress, a job's curves and confusion matrix, comparison reports)."""
    return _env.get_template("jobs.html").render(
        title="simtrain jobs",
        config={"api_base": api_base},
        static_url=lambda name: asset_url(static_base, name),
    )
