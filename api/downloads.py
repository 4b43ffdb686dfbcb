"""What every file download of the API carries: its headers, and its route's documented answers.

    @router.get(path, response_class=Response, responses=download_responses("application/json", "the file"))
    def handler(...):
        return Response(data, media_type="application/json", headers=attachment_headers(etag, "model.json"))

A download is an attachment under its file name, tagged with the quoted SHA-256 of its bytes (its ETag)
and cached privately for an hour (`api/routes/artifacts.py`, `api/routes/checkpoints.py`). A route that
answers If-None-Match (`conditional=True`) compares it with `etag_matches` (RFC 9110: `*`, a list of tags,
weak comparison) and answers a match with `not_modified(etag)`: 304, no body, the ETag and Cache-Control.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from fastapi import Response

__all__ = ["attachment_headers", "download_responses", "etag_matches", "not_modified", "sha256_etag"]

CACHE_CONTROL = "private, max-age=3600"
NOT_MODIFIED = {"description": "If-None-Match matched the ETag"}
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')  # RFC 9110 entity-tag; a comma may sit inside the quotes


def sha256_etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def attachment_headers(etag: str, filename: str) -> dict[str, str]:
    """ETag (`etag`, quoted), Content-Disposition (an attachment named `filename`) and Cache-Control."""
    return {
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": CACHE_CONTROL,
    }


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match value matches `etag` (quoted): `*`, or any tag of its list compared weakly
    (RFC 9110 13.1.2: `W/"x"` and `"x"` are the same tag). A value that is neither matches nothing."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _ENTITY_TAG.fullmatch(etag.strip())
    opaque = wanted.group(1) if wanted else etag.strip()
    return any(tag.group(1) == opaque for tag in _ENTITY_TAG.finditer(if_none_match))


def not_modified(etag: str) -> Response:
    """304 for a matched If-None-Match: no body; the ETag and Cache-Control the 200 would carry."""
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})


def download_responses(
    media_type: str, description: str, not_found: str, *, conditional: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a download route: 200 with `media_type`, 304 when `conditional`
    (the route answers If-None-Match), 404."""
    ok = {"content": {media_type: {}}, "description": description}
    return {200: ok, **({304: NOT_MODIFIED} if conditional else {}), 404: {"description": not_found}}
