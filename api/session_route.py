"""The route class of every router: a sync route gives its database connection back in its own thread.

    router = APIRouter(prefix=..., route_class=SessionReleasingRoute)

A sync route runs in a request thread, and FastAPI validates what it returns in another thread-pool hop;
the session dependency closes after that. A connection still checked out between those hops is held by a
request that waits for a free thread, while the threads may wait for connections: with more requests in
flight than the pool has connections, finished requests and waiting threads held each other until the
pool timeout (503s; tests/api/test_pool_pressure.py). So the session a sync route was given is closed as
the route returns, in the route's thread: connections are only ever checked out inside a thread, and the
pool (45) is larger than the request threads (40). What the route loaded stays readable (closing expunges,
it expires nothing); a session used again later (a streamed body) opens a new transaction, which the
dependency closes at the end of the request.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session

__all__ = ["SessionReleasingRoute"]


class SessionReleasingRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint) and not inspect.isasyncgenfunction(endpoint):
            endpoint = _closing_sessions(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _closing_sessions(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the signature and annotations through __wrapped__
    def call(**kwargs: Any) -> Any:
        try:
            return endpoint(**kwargs)
        finally:
            for value in kwargs.values():
                if isinstance(value, Session) and value.in_transaction():
                    value.close()

    return call
