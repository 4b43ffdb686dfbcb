"""The worker's Celery tasks, sent by name (`core.queue.TRAIN_TASK`, `core.queue.RECONCILE_TASK`,
`core.queue.DELIVER_TASK`, `core.queue.TUNING_STEP_TASK`).

`simtrain.train_job(job_id)` runs `worker.runner.run_job`; a worker in warm shutdown takes no new job: it
rejects the message with requeue (back to the queue for the next worker) without claiming. Every training
task it sends goes to its job's queue with its job's priority (`core.queue.train_route`), and a job whose
queue this worker does not consume (a GPU job on a CPU worker, sent to the wrong queue) is sent on to its
own queue unclaimed: it never runs on the wrong kind of worker (`core.routing`). Delivery is at
least once (acks_late, reject on worker lost, Redis visibility timeout, the reconciler); the database claim makes execution once. The task
itself never fails because of the job: expected and unexpected training errors end the job as `failed`
inside `run_job`. Only a database outage before the claim is retried here (a few times, with a delay);
after that the reconciler re-sends the job once the database is back.

`simtrain.tuning_step(study_id)` runs one step of a tuning study's driver (`core.tuning.driver.run_step`);
`train_job` sends it when a trial job has ended (`core.tuning.triggers.after_job`).

`simtrain.deliver_webhook(delivery_id)` sends one attempt of a webhook delivery
(`core.webhooks.deliver.deliver_once`) and, after a failed one, sends itself again with the backoff as
countdown; the reconciler re-sends deliveries that are due and not in flight (a lost message, a worker
killed mid-attempt: the same `webhook-id` again).

`simtrain.import_dataset(dataset_id)` imports a dataset given by URI (`core.dataset_import.import_dataset`)
and then sends the train task of every queued job waiting for it. A queued job whose dataset is still
importing is not claimed: `train_job` sends itself again a few seconds later (`import_wait`, bounded by
`SIMTRAIN_IMPORT_WAIT_S`), then runs it (and `open_dataset` fails it, naming `dataset`, if the import
never became ready).

The tasks are Celery shared tasks: this module imports no app. The worker's app (`worker.app`) lists it in
`include`, so Celery imports it when the worker starts and registers the tasks on that app; a bound task
re-sends through its own app (`self.app`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import Reject
from sqlalchemy.exc import SQLAlchemyError

from core.dataset_import import import_dataset as run_import
from core.dataset_import import import_wait, waiting_jobs
from core.db import jobs as jobdb
from core.queue import (
    DELIVER_TASK,
    IMPORT_TASK,
    RECONCILE_TASK,
    TRAIN_TASK,
    TUNING_STEP_TASK,
    train_route,
    webhook_queue,
)
from core.routing import worker_kind, worker_queues
from core.settings import get_settings
from core.tuning.driver import run_step
from core.tuning.triggers import after_job
from core.webhooks.deliver import deliver_once
from worker.reconcile import reconcile_once
from worker.runner import make_owner, run_job, session_factory, shutdown_requested

__all__ = ["deliver_webhook", "import_dataset", "reconcile", "train_job", "tuning_step"]

log = logging.getLogger("simtrain.worker.tasks")


def durable_task(name: str) -> Callable:
    """A bound task delivered at least once: acknowledged after it has run, given back to the queue when its
    worker dies (its own claim in the database makes it run once), retried at most 3 times."""
    return shared_task(
        name=name, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=3
    )


@durable_task(TRAIN_TASK)
def train_job(self, job_id: str) -> str:
    def resend(jid: str) -> None:
        self.app.send_task(TRAIN_TASK, args=[jid], **train_route(jid, get_settings()))

    if shutdown_requested.is_set():  # warm shutdown: take no new job, leave the message for the next worker
        log.info("job %s: worker shutting down; message left for redelivery", job_id)
        raise Reject("worker shutting down", requeue=True)
    try:
        if _misrouted(self, str(job_id)):
            return "rerouted"
        if _waits_for_import(self, str(job_id)):
            return "waiting_for_dataset"
        outcome = run_job(str(job_id), resend=resend)
    except SQLAlchemyError as exc:  # the database is unreachable before the claim
        log.warning(
            "job %s: database unavailable (%s); retrying the task", job_id, str(exc).splitlines()[0][:200]
        )
        raise self.retry(exc=exc, countdown=5) from None
    after_job(session_factory(get_settings()), str(job_id))  # a tuning trial that ended: its study steps
    return outcome.value


def _misrouted(task, job_id: str) -> bool:
    """True when the job belongs on a queue this worker does not consume: it is sent there, unclaimed."""
    settings = get_settings()
    route = train_route(job_id, settings)
    if route["queue"] in worker_queues(settings, worker_kind(settings)):
        return False
    task.app.send_task(TRAIN_TASK, args=[job_id], **route)
    log.warning("job %s: not for a %s worker; sent on to %s", job_id, worker_kind(settings), route["queue"])
    return True


def _waits_for_import(task, job_id: str) -> bool:
    """True when the job's dataset is still importing: the task is sent again after a short wait."""
    settings = get_settings()
    session = session_factory(settings)()
    try:
        wait = import_wait(session, settings, job_id)
        if wait is None:
            return False
        jobdb.mark_dispatched(session, job_id)  # the reconciler need not send it meanwhile
        session.commit()
    finally:
        session.close()
    task.app.send_task(TRAIN_TASK, args=[job_id], countdown=wait, **train_route(job_id, settings))
    log.info("job %s: its dataset is importing; trying again in %.1f s", job_id, wait)
    return True


@durable_task(IMPORT_TASK)
def import_dataset(self, dataset_id: str) -> str:
    from core.storage import make_storage

    settings = get_settings()
    factory = session_factory(settings)
    try:
        outcome = run_import(factory, make_storage(settings.storage_url), settings, str(dataset_id))
        with factory() as session:
            waiting = waiting_jobs(session, str(dataset_id)) if outcome in ("ready", "failed") else []
    except SQLAlchemyError as exc:  # the database is away: the claim lapses; the reconciler re-sends too
        log.warning("dataset %s: database unavailable (%s)", dataset_id, str(exc).splitlines()[0][:200])
        raise self.retry(exc=exc, countdown=5) from None
    for job_id in waiting:  # the jobs that waited for this import: run (or fail) them now
        try:
            self.app.send_task(TRAIN_TASK, args=[job_id], **train_route(job_id, settings))
        except Exception as exc:  # noqa: BLE001 - the broker is down: their own retries come anyway
            log.warning("job %s: not sent after its dataset's import (%s)", job_id, exc)
            break
    return outcome


@shared_task(name=RECONCILE_TASK, ignore_result=True)
def reconcile() -> dict:
    settings = get_settings()
    session = session_factory(settings)()
    try:
        return reconcile_once(session, settings)
    finally:
        session.close()


@durable_task(DELIVER_TASK)
def deliver_webhook(self, delivery_id: str) -> str:
    settings = get_settings()
    session = session_factory(settings)()
    try:
        result = deliver_once(session, str(delivery_id), owner=make_owner(), settings=settings)
    except SQLAlchemyError as exc:  # the database is unreachable: the delivery waits, untouched or leased
        log.warning(
            "webhook delivery %s: database unavailable (%s)", delivery_id, str(exc).splitlines()[0][:200]
        )
        raise self.retry(exc=exc, countdown=5) from None
    finally:
        session.close()
    if result.retry_in is not None:
        try:
            self.app.send_task(
                DELIVER_TASK, args=[delivery_id], queue=webhook_queue(settings), countdown=result.retry_in
            )
        except Exception as exc:  # noqa: BLE001 - the broker is down: the reconciler sends it when due
            log.warning("webhook delivery %s: retry not queued (%s)", delivery_id, exc)
    return result.outcome


@durable_task(TUNING_STEP_TASK)
def tuning_step(self, study_id: str) -> str:
    settings = get_settings()
    session = session_factory(settings)()
    try:
        return run_step(session, settings, str(study_id))
    except SQLAlchemyError as exc:  # the database is unreachable: the reconciler steps the study later too
        log.warning("tuning study %s: database unavailable (%s)", study_id, str(exc).splitlines()[0][:200])
        raise self.retry(exc=exc, countdown=5) from None
    finally:
        session.close()
