"""Liveness, readiness and Prometheus metrics (no authentication).

- `GET /healthz`: the process answers.
- `GET /readyz`: the database and the broker answer; 503 naming the one that is down.
- `GET /metrics`: Prometheus text: request counts and latencies per route, jobs per status.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import Engine, create_engine, func, select, text
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_body
from api.schemas import HealthPublic
from api.session_route import SessionReleasingRoute
from core.db.models import Job, JobStatus

__all__ = ["AppMetrics", "MetricsMiddleware", "check_broker", "check_database", "router"]

router = APIRouter(tags=["health"], route_class=SessionReleasingRoute)

CHECK_TIMEOUT_S = 5.0


class AppMetrics:
    """The Prometheus collectors of one app (a registry of its own, so several apps can coexist)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "simtrain_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "simtrain_http_request_duration_seconds",
            "HTTP request latency (until the response is complete)",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.jobs = Gauge("simtrain_jobs", "jobs per status", ["status"], registry=self.registry)
        self.ready = Gauge(
            "simtrain_dependency_up",
            "1 when the dependency answered the last check",
            ["dependency"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts requests and measures latency, labelled by the route template (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, label, str(status)).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - start)


def check_database(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def check_broker(url: str, cache: dict[str, Any]) -> None:
    if url.startswith(("redis://", "rediss://")):
        import redis

        client = cache.get(url)
        if client is None:
            client = cache[url] = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
    elif url.startswith("sqla+"):
        engine = cache.get(url)
        if engine is None:
            engine = cache[url] = create_engine(
                url[len("sqla+") :], connect_args={"timeout": 2} if "sqlite" in url else {}
            )
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    else:
        from kombu import Connection

        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)


async def _run_check(fn, *args) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(fn, *args), timeout=CHECK_TIMEOUT_S)
        return "ok"
    except TimeoutError:
        return f"down: no answer within {CHECK_TIMEOUT_S:g}s"
    except Exception as exc:  # noqa: BLE001 - any failure means "down"
        return f"down: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}".rstrip(
            ": "
        )


@router.get("/healthz", response_model=HealthPublic)
async def healthz() -> HealthPublic:
    # async: answered on the event loop, so liveness does not queue behind busy threadpool workers
    return HealthPublic(status="ok")


@router.get(
    "/readyz",
    response_model=HealthPublic,
    responses={503: {"description": "the database or the broker is down (named in `checks`)"}},
)
async def readyz(request: Request) -> Any:
    state = request.app.state
    database, broker = await asyncio.gather(
        _run_check(check_database, state.engine),
        _run_check(check_broker, state.settings.broker_url, state.broker_check_cache),
    )
    checks = {"database": database, "broker": broker}
    metrics: AppMetrics = state.metrics
    for name, result in checks.items():
        metrics.ready.labels(name).set(1 if result == "ok" else 0)
    if all(v == "ok" for v in checks.values()):
        return HealthPublic(status="ok", checks=checks)
    down = [name for name, v in checks.items() if v != "ok"]
    body = {"status": "unavailable", "checks": checks}
    body |= error_body(
        "service_unavailable", f"not ready: {', '.join(down)} down", {"down": down, "checks": checks}
    )
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def _job_counts(request: Request) -> dict[str, int]:
    with request.app.state.sessionmaker() as session:
        rows = session.execute(select(Job.status, func.count()).group_by(Job.status)).all()
    return {str(status): int(n) for status, n in rows}


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    app_metrics: AppMetrics = request.app.state.metrics
    try:
        counts = await asyncio.wait_for(run_in_threadpool(_job_counts, request), timeout=CHECK_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - the metrics page must render while the database is down
        counts = None
    if counts is not None:
        for status in JobStatus:
            app_metrics.jobs.labels(status.value).set(counts.get(status.value, 0))
    return Response(generate_latest(app_metrics.registry), media_type=CONTENT_TYPE_LATEST)
