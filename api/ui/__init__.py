"""simtrain's browser pages: Jinja2 templates (`templates/`) and their static files (`static/`).

    from api.ui import PAGE_HEADERS, STATIC_DIR, render_console_page, render_report_page
    html = render_report_page(report, meta)                           # self-contained comparison report
    page = render_console_page("jobs.html", title="simtrain jobs")    # a console page (/ui/...)

- `render.py`: the template environment, the report and the console pages (`base.html` is their frame),
  `json_for_script` for data in a page, `PAGE_HEADERS` (no-store, no framing, Content-Security-Policy).
- `assets.py`: `STATIC_DIR` (CSS, JavaScript, the vendored Chart.js build and its licence), inlining and
  versioned URLs of its files. `api/routes/pages.py` serves the directory at `/static/{name}`.
"""

from api.ui.assets import STATIC_DIR
from api.ui.render import PAGE_HEADERS, json_for_script, render_console_page, render_report_page

__all__ = ["PAGE_HEADERS", "STATIC_DIR", "json_for_script", "render_console_page", "render_report_page"]
