"""api.deadline.RequestDeadline on a small app: a stuck route is answered 503 on time and runs on;
fast routes, streamed responses and slowly arriving bodies are not cut; 0 turns it off.
(The real case, a frozen PostgreSQL under the API, is tests/hostile/test_postgres_frozen.py.)"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from api.deadline import RequestDeadline

DEADLINE = 0.4


def make_app(seconds: float) -> tuple[FastAPI, RequestDeadline, threading.Event, list[str]]:
    app = FastAPI()
    release = threading.Event()
    done: list[str] = []

    @app.get("/fast")
    def fast() -> dict:
        return {"ok": True}

    @app.get("/stuck")
    def stuck() -> dict:  # a sync route blocked in its worker thread, as on a frozen database
        release.wait(10)
        done.append("stuck")
        return {"late": True}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks():
            for i in range(4):
                await asyncio.sleep(DEADLINE / 2)
                yield f"{i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    middleware = RequestDeadline(app, seconds=seconds)
    return app, middleware, release, done


async def _client(middleware) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=middleware), base_url="http://t")


@pytest.mark.anyio
async def test_a_stuck_route_is_answered_503_on_time_and_finishes_in_the_background():
    _app, middleware, release, done = make_app(DEADLINE)
    async with await _client(middleware) as client:
        start = time.monotonic()
        r = await client.get("/stuck")
        took = time.monotonic() - start
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "request_timeout"
        assert r.json()["error"]["details"] == {"timeout_s": DEADLINE}
        assert int(r.headers["retry-after"]) >= 1
        assert DEADLINE <= took < DEADLINE + 1.0
        assert len(middleware.abandoned) == 1 and done == []
        release.set()  # the database answers again: the route completes, its output is dropped
        for _ in range(100):
            if not middleware.abandoned:
                break
            await asyncio.sleep(0.05)
        assert done == ["stuck"] and not middleware.abandoned
        assert (await client.get("/fast")).json() == {"ok": True}


@pytest.mark.anyio
async def test_fast_routes_streams_and_slow_bodies_are_not_cut():
    _app, middleware, _release, _done = make_app(DEADLINE)
    async with await _client(middleware) as client:
        assert (await client.get("/fast")).status_code == 200
        r = await client.get("/stream")  # 4 x DEADLINE/2: longer than the deadline, started at once
        assert r.status_code == 200 and r.text == "0\n1\n2\n3\n"

        async def slow_body():
            for _ in range(3):
                await asyncio.sleep(DEADLINE / 2)
                yield b"x" * 1000

        r = await client.post("/echo", content=slow_body())  # the upload itself is not timed
        assert r.status_code == 200 and r.json() == {"bytes": 3000}
        assert not middleware.abandoned


@pytest.mark.anyio
async def test_zero_turns_the_deadline_off():
    _app, middleware, release, _done = make_app(0)
    threading.Timer(DEADLINE * 2, release.set).start()
    async with await _client(middleware) as client:
        r = await client.get("/stuck")
    assert r.status_code == 200 and r.json() == {"late": True}


@pytest.fixture
def anyio_backend():
    return "asyncio"
