"""The FastAPI application factory.

    uvicorn --factory api.main:create_app          # what `simtrain serve` and `simtrain dev` run

Nothing is created at import time: `create_app(settings)` builds the engine, the storage, the metrics
and the routes for one set of settings (tests make several apps side by side). The schema is not
created here: run `simtrain migrate` (Alembic) first.
"""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deadline import RequestDeadline
from api.errors import document_error_responses, install_error_handlers
from api.limits import BodyLimitMiddleware
from api.preload import start_preload
from api.routes import (
    API_PREFIX,
    artifacts,
    comparisons,
    datasets,
    health,
    jobs,
    pages,
    predict,
    similarity,
    webhooks,
)
from api.routes import checkpoints as checkpoint_routes
from api.routes import console_pages as console_page_routes
from api.routes import tuning as tuning_routes
from api.routes import weights as weights_routes
from api.routes.health import AppMetrics, MetricsMiddleware
from api.routes.predict import ModelCache
from api.routes.unversioned import redirect_router
from core.db import make_engine, make_sessionmaker
from core.settings import Settings, get_settings
from core.storage import make_storage

__all__ = ["API_PREFIX", "create_app"]

VERSION = "0.1.0"

DESCRIPTION = """
Training as a service for classifiers whose loss knows that some mistakes are worse than others.

Upload a dataset (or use `builtin:digits`), describe how alike the classes are (`similarity`) and which
loss to train with, and follow the job. Every `/v1` route needs `Authorization: Bearer <API key>`.
Errors are `{"error": {"code", "message", "details"}}`. The unversioned paths (`POST /jobs`, ...) answer
308 to their `/v1` twins, method and body kept (`curl -L`).
"""


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Take what a process holds once the app is built (torch, FastAPI, SQLAlchemy, pydantic: ~260k
    objects) out of the cyclic garbage collector's view, once per process (`gc.freeze`). Each full
    collection scanned them all: 150 ms idle, 100-600 ms under load, with the event loop stopped for
    every request of the worker. They stay alive for the life of the process anyway."""
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.is_sqlite or "://" not in settings.storage_url:
        settings.ensure_home()
    engine = make_engine(settings.database_url)
    storage = make_storage(settings.storage_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        freeze_startup_objects()
        app.state.preload = start_preload(settings) if settings.api_preload else None
        yield
        engine.dispose()
        for item in app.state.broker_check_cache.values():
            close = getattr(item, "dispose", None) or getattr(item, "close", None)
            if close is not None:
                close()

    app = FastAPI(
        title="simtrain",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")  # same pool
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.storage = storage
    app.state.metrics = AppMetrics()
    app.state.model_cache = ModelCache()
    app.state.broker_check_cache = {}

    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_json_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(RequestDeadline, seconds=settings.request_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    modules = (
        health,
        datasets,
        weights_routes,
        jobs,
        artifacts,
        predict,
        comparisons,
        similarity,
        pages,
        webhooks,
    )
    modules += (tuning_routes,)
    modules += (checkpoint_routes,)  # /v1/jobs/{id}/checkpoints[...]
    modules += (console_page_routes,)  # the console's new-job, comparisons and tuning pages
    for module in modules:
        app.include_router(module.router)
    app.include_router(redirect_router(m.router for m in modules))  # /jobs... -> 308 -> /v1/jobs...

    generate_openapi = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document_error_responses(generate_openapi())  # the error bodies and statuses routes really send
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
