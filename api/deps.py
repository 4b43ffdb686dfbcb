"""Dependency aliases for the routes: settings, a database session, the artifact storage, the tenant.

    @router.get("/things/{id}")
    def get_thing(id: str, session: SessionDep, tenant: CurrentTenant) -> ThingPublic: ...

`CurrentTenant` is the id of the tenant whose API key came as `Authorization: Bearer <key>`; a missing,
unknown or revoked key is a 401 with `WWW-Authenticate: Bearer`. `PresentedKey` is the key as sent (401
when there is none), not yet looked up: for a route that checks it in its own query (the status read),
which then raises `Unauthorized(INVALID_KEY)` itself.

`IdempotencyDep` is the request's `Idempotency-Key` header with the one replay rule of the routes that
create work (jobs, comparisons): the same key with the same body answers 200 with what the first request
created; with another body, 409 naming the object it created:

    def create_thing(body: ThingCreate, idem: IdempotencyDep, ...) -> ThingPublic:
        before = idem.replay(lambda key: find_thing(session, tenant, key), request_hash(body),
                             hash_of=lambda t: t.request_hash, kind="thing")
        if before is not None:
            return thing_public(before)          # answered 200
        ... create it with idempotency_key=idem.key ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Header, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from core.auth import resolve_api_key
from core.errors import Conflict, Unauthorized
from core.settings import Settings

__all__ = [
    "INVALID_KEY",
    "CurrentTenant",
    "Idempotency",
    "IdempotencyDep",
    "PresentedKey",
    "SessionDep",
    "SettingsDep",
    "StorageDep",
    "bearer_scheme",
]


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for the request. Creating one does no I/O, so it happens on the event loop (a sync
    dependency with yield would cost two thread-pool hops per request); closing one that still holds a
    connection (a rollback: I/O) runs in a thread of its own, outside the request threads' limit, and
    shielded so a client that hangs up cannot leave the connection checked out. Under the request
    threads' limit the close queued behind requests that waited for the very connection it held: a
    deadlock broken only by the pool timeout, with 503s (tests/api/test_pool_pressure.py). FastAPI's
    own yield dependencies exit the same way."""
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(session.close, limiter=anyio.CapacityLimiter(1))
        else:
            session.close()  # no connection held: nothing to roll back


def get_storage(request: Request) -> Any:
    return request.app.state.storage


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StorageDep = Annotated[Any, Depends(get_storage)]  # core.storage.Storage

bearer_scheme = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer st_...`")


INVALID_KEY = "invalid or revoked API key"


async def get_presented_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    # async: no I/O here, so no thread-pool hop
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    return credentials.credentials.strip()


PresentedKey = Annotated[str, Depends(get_presented_key)]


def get_current_tenant(session: SessionDep, key: PresentedKey) -> str:
    # The lookup runs in the route's own session and ends its transaction before the route runs: between
    # this thread-pool hop and the route's, the request waits for a free request thread, and a connection
    # held while waiting let requests that held connections wait for threads that waited for connections
    # (50 clients, 40 threads, 45 connections: 503s at the pool timeout; tests/api/test_pool_pressure.py).
    # The route's first query checks the same connection out again (LIFO pool, no ping: core.db.session).
    tenant_id = resolve_api_key(session, key)
    session.commit()  # read-only: ends the transaction, the connection goes back to the pool
    if tenant_id is None:
        raise Unauthorized(INVALID_KEY)
    return tenant_id


CurrentTenant = Annotated[str, Depends(get_current_tenant)]


T = TypeVar("T")


class Idempotency:
    """The request's Idempotency-Key (`key`, None when none was sent) and the replay rule."""

    def __init__(self, key: str | None, response: Response) -> None:
        self.key = key
        self._response = response

    def replay(
        self,
        find: Callable[[str], T | None],
        body_hash: str,
        *,
        hash_of: Callable[[T], str | None],
        kind: str,
    ) -> T | None:
        """What this key created before (`find(key)`), the answer then 200; None without a key or when
        the key is new. Conflict (409) when it came with another body (`hash_of(it) != body_hash`)."""
        if self.key is None:
            return None
        existing = find(self.key)
        if existing is None:
            return None
        if hash_of(existing) != body_hash:
            raise Conflict(
                "this Idempotency-Key was used with a different request body",
                details={f"{kind}_id": existing.id, "field": "Idempotency-Key"},
            )
        self._response.status_code = status.HTTP_200_OK
        return existing


async def get_idempotency(
    response: Response,
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="the same key with the same body returns what the first request created (200); "
            "with another body: 409",
        ),
    ] = None,
) -> Idempotency:
    # async: no I/O here, so no thread-pool hop
    return Idempotency(key, response)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]
