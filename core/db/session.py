"""Engine and session factory for PostgreSQL and SQLite.

SQLite (the embedded default) is opened in WAL mode with a busy timeout so the API and a worker process
can share it; PostgreSQL gets short connect/statement timeouts so an outage fails fast (the API answers
503) instead of hanging, and a pre-ping of the connections that sat idle in the pool for more than
PING_IDLE_S (one that was in use a moment ago is not pinged: that round trip cost as much as the query
of a status read). A connection that died since its last use fails its next statement instead; SQLAlchemy
then invalidates the pool, so the connections made before are not used again (the API answers that
request with 503; a read-only caller may retry it once, see `api.routes.jobs`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["PING_IDLE_S", "make_engine", "make_sessionmaker", "session_scope"]

PING_IDLE_S = 1.0


def make_engine(url: str, *, pool_size: int = 20) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            # As for PostgreSQL, more connections than the API's 40 request threads: with SQLAlchemy's
            # SQLite default (5 + 10) the threads waited for the pool while the connections they waited
            # for belonged to finished requests whose close was queued behind them in the same thread
            # pool, a deadlock broken only by the pool timeout (tests/hostile/test_load_embedded.py).
            pool_size=pool_size,
            max_overflow=25,
            pool_timeout=30,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - runs per connection
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=25,  # 45 in all: more than the API's 40 request threads, so none waits for the pool
        pool_timeout=5,
        pool_use_lifo=True,  # the same few connections stay busy under light load: no idle pings for them
        pool_recycle=1800,
        connect_args={"connect_timeout": 3, "options": "-c statement_timeout=15000"},
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """pool_pre_ping for the connections idle for more than PING_IDLE_S only (a new one is not pinged)."""

    @event.listens_for(engine, "checkin")
    def _idle_since(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()  # `info` is emptied when the connection is replaced

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= PING_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # what pool_pre_ping does: reconnect, and drop the connections made before
            raise InvalidatePoolError(f"pre-ping of an idle connection failed: {exc}") from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
