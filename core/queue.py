"""Celery configuration shared by the API (which only sends) and the worker (which consumes).

The API never imports `worker/`: it sends by task name with `send_train(job_id)`. Delivery is at least
once (`acks_late`, `task_reject_on_worker_lost`); the job's database lease makes execution once.

A training task goes to the queue of the device its job asks for, with its job's priority
(`core.routing.route_for`: `<queue>`, `<queue>.cpu` or `<queue>.gpu`; Redis priority 3 / 6 / 9 for high /
normal / low). Every sender routes the same way, so a re-sent job (hand-back, reconciler, resume) keeps its
queue and its place: `send_train` reads the job's stored spec when it is not given one.

    from core.queue import send_train
    send_train(job_id)              # routed by the job's stored spec (one primary-key read)
    send_train(job_id, spec=spec)   # routed by the spec at hand
    app.send_task(TRAIN_TASK, args=[job_id], **train_route(job_id, settings))   # the same, by another app
    send_delivery("msg_...")        # one webhook delivery (core.webhooks), on `webhook_queue(settings)`
    send_tuning_step(study_id)      # one step of a tuning study's driver (core.tuning.driver)
    send_import(dataset_id)         # the import of a dataset given by URI (core.dataset_import)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from sqlalchemy import select

from core.routing import PRIORITY_STEPS, REDIS_SEP, TrainRoute, route_for
from core.settings import Settings, get_settings

__all__ = [
    "DELIVER_TASK",
    "IMPORT_TASK",
    "RECONCILE_TASK",
    "TRAIN_TASK",
    "TUNING_STEP_TASK",
    "broker_client",
    "celery_config",
    "make_celery",
    "send_delivery",
    "send_import",
    "send_train",
    "send_tuning_step",
    "train_route",
    "webhook_queue",
]

TRAIN_TASK = "simtrain.train_job"
RECONCILE_TASK = "simtrain.reconcile"
DELIVER_TASK = "simtrain.deliver_webhook"
TUNING_STEP_TASK = "simtrain.tuning_step"
IMPORT_TASK = "simtrain.import_dataset"


class EmbeddedSqlaTransport(SqlaTransport):
    """kombu's SQLAlchemy transport (the embedded default's broker), polling five times a second.

    The stock transport polls its table once a second, so a job waited up to a second before a worker saw
    it; its `polling_interval` cannot be set through transport options (they all go to `create_engine`)."""

    polling_interval = 0.2


TRANSPORT_ALIASES["sqla"] = f"{__name__}:EmbeddedSqlaTransport"


def celery_config(settings: Settings) -> dict[str, Any]:
    transport: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis://", "rediss://")):
        transport = {
            "visibility_timeout": settings.visibility_timeout,
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
            "retry_on_timeout": True,
            "health_check_interval": 10,
            # message priorities (core.routing): one list per step, popped in step order (lower first);
            # among queues at one step, round robin, so a device queue is not starved by `<queue>`
            "priority_steps": list(PRIORITY_STEPS),
            "sep": REDIS_SEP,
            "queue_order_strategy": "round_robin",
        }
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_heartbeat": 0,
        "task_default_queue": settings.queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "worker_hijack_root_logger": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5},
    }


def make_celery(settings: Settings | None = None, name: str = "simtrain") -> Celery:
    settings = settings or get_settings()
    app = Celery(name)
    app.conf.update(celery_config(settings))
    return app


@lru_cache(maxsize=4)
def _client(broker_url: str, queue: str) -> Celery:
    settings = get_settings().model_copy(update={"broker_url": broker_url, "queue": queue})
    return make_celery(settings, name="simtrain-client")


def broker_client(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    return _client(settings.broker_url, settings.queue)


@lru_cache(maxsize=4)
def _spec_reader(database_url: str):
    from core.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(database_url, pool_size=2))


def train_route(job_id: str, settings: Settings, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """`send_task` keywords (queue, priority) of the job's training task: by `spec`, else by the job's stored
    spec (an unknown job: the default queue, normal priority). Raises when the database cannot be read."""
    if spec is None:
        from core.db import Job

        with _spec_reader(settings.database_url)() as session:
            spec = session.execute(select(Job.spec).where(Job.id == job_id)).scalar_one_or_none()
    route: TrainRoute = route_for(spec, settings)
    return {"queue": route.queue, "priority": route.priority}


def send_train(job_id: str, settings: Settings | None = None, *, spec: dict[str, Any] | None = None) -> None:
    """Send one training task, routed by `spec` or the job's stored spec (`train_route`). Raises when the
    broker (or the database, to read the spec) cannot be reached: the reconciler sends it later."""
    settings = settings or get_settings()
    route = train_route(job_id, settings, spec)
    broker_client(settings).send_task(TRAIN_TASK, args=[job_id], **route)


def webhook_queue(settings: Settings) -> str:
    """The queue webhook deliveries go to: `settings.webhook_queue`, else the training queue."""
    return settings.webhook_queue or settings.queue


def send_delivery(delivery_id: str, settings: Settings | None = None, countdown: float | None = None) -> None:
    """Send one webhook delivery task (after `countdown` seconds). Raises when the broker cannot be reached
    (the worker's reconciler sends it later)."""
    settings = settings or get_settings()
    broker_client(settings).send_task(
        DELIVER_TASK, args=[delivery_id], queue=webhook_queue(settings), countdown=countdown
    )


def send_tuning_step(study_id: str, settings: Settings | None = None) -> None:
    """Send one step of a tuning study (`core.tuning.driver`), on the training queue. Raises when the broker
    cannot be reached (the worker's reconciler sends it later)."""
    settings = settings or get_settings()
    broker_client(settings).send_task(TUNING_STEP_TASK, args=[study_id], queue=settings.queue)


def send_import(dataset_id: str, settings: Settings | None = None) -> None:
    """Send the import task of a dataset given by URI, on the training queue. Raises when the broker cannot
    be reached (the worker's reconciler sends it later)."""
    settings = settings or get_settings()
    broker_client(settings).send_task(IMPORT_TASK, args=[dataset_id], queue=settings.queue)
