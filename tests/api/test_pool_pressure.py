"""The request threads and the connection pool under pressure: a finished request gives its connection
back without waiting for a request thread.

More requests at once than the pool has connections, on the real PostgreSQL, with the thread pool made
larger than the connection pool (60 threads, 45 connections) so that threads do wait for connections.
When closing a session needed a request thread, the sessions of finished requests queued behind the
requests that waited for their connections: a deadlock that only the pool timeout broke, with 503s
(seen in the 500-submission load test when the first submissions stalled on a slow import).

    pytest tests/api/test_pool_pressure.py
"""

from __future__ import annotations

import anyio
import httpx
import pytest

REQUESTS = 300
THREADS = 60  # more than the pool's 20 + 25 connections (core.db.session.make_engine)


async def _burst(app, auth: dict[str, str]) -> list[int]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    statuses: list[int] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=60) as client:

        async def one() -> None:
            # a sync route with the session dependency: its connection is held until the session closes
            r = await client.get("/v1/jobs", headers=auth, params={"limit": 5})
            statuses.append(r.status_code)

        async with anyio.create_task_group() as group:
            for _ in range(REQUESTS):
                group.start_soon(one)
    return statuses


@pytest.mark.services
@pytest.mark.timeout(120)
def test_finished_requests_return_their_connections_while_threads_wait_for_the_pool(make_service):
    svc = make_service("postgres")
    svc.create_job()
    statuses = anyio.run(_burst, svc.app, svc.auth_a)
    counts = {s: statuses.count(s) for s in set(statuses)}
    assert counts == {200: REQUESTS}, counts
    assert svc.app.state.engine.pool.checkedout() == 0
