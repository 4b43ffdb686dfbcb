"""simtrain's browser pages: Jinja2 templates (`templates/`) and their static files (`static/`).

    from api.ui import STATIC_DIR, render_jobs_page, render_report_page
    html = render_report_page(report, meta)                         # self-contained comparison report
    page = render_jobs_page(static_base="/static", api_base="/v1")   # the jobs page (/ui/jobs)

- `render.py`: the template environment and the two pages; `json_for_script` for data in a page.
- `assets.py`: `STATIC_DIR` (CSS, JavaScript, the vendored Chart.js build and its licence), inlining and
  versioned URLs of its files. `api/routes/pages.py` serves the directory at `/static/{name}`.
"""

from api.ui.assets import STATIC_DIR
from api.ui.render import json_for_script, render_jobs_page, render_report_page

__all__ = ["STATIC_DIR", "json_for_script", "render_jobs_page", "render_report_page"]
