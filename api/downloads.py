"""What every file download of the API carries: its headers, and its route's documented answers.

    @router.get(path, response_class=Response, responses=download_responses("application/json", "the file"))
    def handler(...):
        return Response(data, media_type="application/json", headers=attachment_headers(etag, "model.json"))

A download is an attachment under its file name, tagged with the quoted SHA-256 of its bytes (its ETag)
and cached privately for an hour (`api/routes/artifacts.py`, `api/routes/checkpoints.py`).
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["attachment_headers", "download_responses", "sha256_etag"]

CACHE_CONTROL = "private, max-age=3600"
NOT_MODIFIED = {"description": "If-None-Match matched the ETag"}


def sha256_etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def attachment_headers(etag: str, filename: str) -> dict[str, str]:
    """ETag (`etag`, quoted), Content-Disposition (an attachment named `filename`) and Cache-Control."""
    return {
        "ETag": etag,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": CACHE_CONTROL,
    }


def download_responses(
    media_type: str, description: str, not_found: str, *, conditional: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a download route: 200 with `media_type`, 304 when `conditional`
    (the route answers If-None-Match), 404."""
    ok = {"content": {media_type: {}}, "description": description}
    return {200: ok, **({304: NOT_MODIFIED} if conditional else {}), 404: {"description": not_found}}
