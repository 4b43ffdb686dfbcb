"""Keyset pagination over (created_at, id), newest first, with opaque cursors: the one helper every list
route (datasets, jobs, comparisons) pages with.

    @router.get("", response_model=JobList)
    def list_jobs(session: SessionDep, tenant: CurrentTenant, limit: ..., cursor: CursorParam = None):
        page = keyset_page(session, select(Job).where(Job.tenant_id == tenant), limit=limit, cursor=cursor)
        return JobList(items=[job_public(r) for r in page.rows], next_cursor=page.next_cursor)

The query selects one model that has `created_at` and `id` columns. A cursor is
base64url(JSON [created_at ISO 8601 with its offset, id]); one this API did not issue is a 422 naming the
`cursor` field.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from core.errors import InvalidInput

__all__ = ["CursorParam", "Page", "decode_cursor", "encode_cursor", "keyset_page"]

CursorParam = Annotated[str | None, Query(max_length=200)]


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """An opaque cursor for keyset pagination over (created_at, id), newest first."""
    raw = json.dumps([created_at.astimezone(UTC).isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, field: str = "cursor") -> tuple[datetime, str]:
    """(created_at, id) from `encode_cursor`'s text; InvalidInput naming `field` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(row_id, str) or len(row_id) > 64:
            raise ValueError("bad cursor")
        return when, row_id
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise InvalidInput(field, "not a cursor returned by this API") from e


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def keyset_page(session: Session, query: Select, *, limit: int, cursor: str | None) -> Page:
    """The `limit` rows of `query` after `cursor` (None: the first page), newest first, and the cursor of
    the next page (None on the last)."""
    entity = query.column_descriptions[0]["entity"]
    created, ident = entity.created_at, entity.id
    if cursor:
        when, last_id = decode_cursor(cursor)
        query = query.where(or_(created < when, and_(created == when, ident < last_id)))
    rows = session.execute(query.order_by(created.desc(), ident.desc()).limit(limit + 1)).scalars().all()
    page = list(rows[:limit])
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return Page(rows=page, next_cursor=next_cursor)
