"""The worker's Celery tasks, sent by name (`core.queue.TRAIN_TASK`, `core.queue.RECONCILE_TASK`).

`simtrain.train_job(job_id)` runs `worker.runner.run_job`. Delivery is at least once (acks_late, reject on
worker lost, Redis visibility timeout, the reconciler); the database claim makes execution once. The task
itself never fails because of the job: expected and unexpected training errors end the job as `failed`
inside `run_job`. Only a database outage before the claim is retried here (a few times, with a delay);
after that the reconciler re-sends the job once the database is back.

The tasks are Celery shared tasks: this module imports no app. The worker's app (`worker.app`) lists it in
`include`, so Celery imports it when the worker starts and registers the tasks on that app; a bound task
re-sends through its own app (`self.app`).
"""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy.exc import SQLAlchemyError

from core.queue import RECONCILE_TASK, TRAIN_TASK
from core.settings import get_settings
from worker.reconcile import reconcile_once
from worker.runner import run_job, session_factory

__all__ = ["reconcile", "train_job"]

log = logging.getLogger("simtrain.worker.tasks")


@shared_task(
    name=TRAIN_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=3,
)
def train_job(self, job_id: str) -> str:
    def resend(jid: str) -> None:
        self.app.send_task(TRAIN_TASK, args=[jid], queue=get_settings().queue)

    try:
        outcome = run_job(str(job_id), resend=resend)
    except SQLAlchemyError as exc:  # the database is unreachable before the claim
        log.warning(
            "job %s: database unavailable (%s); retrying the task", job_id, str(exc).splitlines()[0][:200]
        )
        raise self.retry(exc=exc, countdown=5) from None
    return outcome.value


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile() -> dict:
    settings = get_settings()
    session = session_factory(settings)()
    try:
        return reconcile_once(session, settings)
    finally:
        session.close()
