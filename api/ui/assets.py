"""The static files of the simtrain pages (`api/ui/static/`): read once, inlined or linked with a version.

    inline("report.js")                      # Markup: the file's text, safe to put between <script> tags
    asset_url("/static", "jobs.js")          # "/static/jobs.js?v=<12 hex digits of its sha256>"

`STATIC_DIR` holds the pages' CSS and JavaScript, the vendored Chart.js UMD build and its licence;
`api/routes/pages.py` serves it at `/static/{name}`. The version in a linked URL changes with the file,
so a browser's cached copy (`max-age`) never outlives an upgrade.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from markupsafe import Markup

__all__ = ["STATIC_DIR", "asset_url", "inline"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
_CLOSING_TAG = re.compile(r"</(script|style)", re.IGNORECASE)
_SOURCE_MAP = re.compile(r"//# sourceMappingURL=\S*\s*$")


@cache
def _read(name: str) -> bytes:
    path = STATIC_DIR / name
    if path.parent != STATIC_DIR or not path.is_file():
        raise FileNotFoundError(f"no static file {name!r} in {STATIC_DIR}")
    return path.read_bytes()


@cache
def inline(name: str) -> Markup:
    """The text of static file `name` for a <script> or <style> element (no source map comment).

    Raises ValueError if it holds a closing `</script` or `</style`, which would end the element early.
    """
    text = _SOURCE_MAP.sub("", _read(name).decode("utf-8").rstrip()).rstrip()
    if _CLOSING_TAG.search(text):
        raise ValueError(f"static file {name!r} contains a closing </script or </style tag")
    return Markup(text)


@cache
def _version(name: str) -> str:
    return hashlib.sha256(_read(name)).hexdigest()[:12]


def asset_url(static_base: str, name: str) -> str:
    """The URL of static file `name` under `static_base`, with its content version as `?v=`."""
    return f"{static_base.rstrip('/')}/{name}?v={_version(name)}"
