"""The reconciler: the database is the source of truth, the broker is only a doorbell.

`reconcile_once(session, settings)` re-sends the training task of every job the broker may have lost, to
the job's own queue with its own priority (`core.routing.route_for` on its stored spec, as the first send):

- queued jobs not dispatched within `settings.requeue_after_seconds` (the API could not reach the
  broker, Redis restarted without persistence, a message was dropped), and
- running jobs whose lease expired (the worker died: SIGKILL, OOM killer, machine lost). The next claim
  resumes them from their last checkpoint, or fails them with `attempts_exhausted` when they are out of
  attempts.

Sending twice is harmless (`core.db.jobs.claim` lets one delivery run the job), but to keep the queue
short each job is sent at most once per `requeue_after_seconds` (and once per lease expiry) across all
workers: a conditional UPDATE of `dispatched_at` is the token, so concurrent reconcilers in several
workers do not all send the same job.

Every worker runs it in a daemon thread (`ReconcilerThread`, started on `worker_ready`, every
`settings.reconcile_seconds`), so no beat process is needed; it is also the `simtrain.reconcile` task.

`reconcile_deliveries(session, settings)` (the same thread, each pass) re-sends the webhook deliveries that
are due and not in flight (`core.webhooks.state.due_deliveries`: pending, no live lease, task not sent
within `requeue_after_seconds`), with the same kind of token (`dispatched_at`).

`core.tuning.triggers.resend_stale` (the same thread, each pass) re-sends the step of every active tuning
study not stepped within `requeue_after_seconds`, so a killed worker or a lost message never loses it.

`reconcile_imports(session, settings)` (the same thread, each pass) re-sends the import of every dataset
stuck in `importing` without a live claim (`core.dataset_import_claims.stale_imports`: sent longer than
`requeue_after_seconds` ago and never claimed, or its importer's claim expired), one sender per state.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from core import dataset_import_claims as imports
from core.db import Job, JobStatus
from core.db import jobs as jobdb
from core.db.types import now as utcnow
from core.settings import Settings
from core.tuning.triggers import resend_stale as resend_stale_studies
from core.webhooks import state as deliveries

__all__ = ["ReconcilerThread", "reconcile_deliveries", "reconcile_imports", "reconcile_once"]

log = logging.getLogger("simtrain.worker.reconcile")


def _take_send_token(s: Session, job: Job, t: datetime) -> bool:
    """Atomically move `dispatched_at` to `t` if nobody re-sent the job since we looked."""
    cond = [Job.id == job.id, Job.status == job.status]
    if job.dispatched_at is None:
        cond.append(Job.dispatched_at.is_(None))
    else:
        cond.append(Job.dispatched_at == job.dispatched_at)
    res = s.execute(
        update(Job).where(*cond).values(dispatched_at=t).execution_options(synchronize_session=False)
    )
    s.commit()
    return res.rowcount == 1


def reconcile_once(
    session: Session,
    settings: Settings,
    *,
    send: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> dict:
    """One pass. Returns {"queued": [ids re-sent], "expired": [ids re-sent], "skipped": n, "errors": n}.
    Each job goes to its own queue with its own priority (`core.routing`, from the spec read here)."""
    specs: dict[str, dict] = {}
    if send is None:
        from core.queue import send_train

        def send(job_id: str) -> None:
            send_train(job_id, settings, spec=specs.get(job_id))

    t = now or utcnow()
    cutoff = t - timedelta(seconds=settings.requeue_after_seconds)
    ids = jobdb.claimable_stale(session, requeue_after_seconds=settings.requeue_after_seconds, now=t)
    session.commit()
    report: dict = {"queued": [], "expired": [], "skipped": 0, "errors": 0}
    if not ids:
        return report
    rows = (
        session.execute(
            select(Job).where(
                Job.id.in_(ids),
                or_(Job.status == JobStatus.queued.value, Job.status == JobStatus.running.value),
            )
        )
        .scalars()
        .all()
    )
    session.commit()
    specs.update({job.id: dict(job.spec or {}) for job in rows})
    for job in rows:
        expired = job.status == JobStatus.running.value
        if expired:
            # send once per expiry: skip when sent after the lease ran out, unless that was long ago
            recent = job.dispatched_at is not None and job.dispatched_at >= cutoff
            if recent and job.lease_expires_at is not None and job.dispatched_at >= job.lease_expires_at:
                report["skipped"] += 1
                continue
        previous = job.dispatched_at
        try:
            if not _take_send_token(session, job, t):
                report["skipped"] += 1
                continue
        except Exception as exc:  # noqa: BLE001
            session.rollback()
            report["errors"] += 1
            log.warning("reconcile: cannot mark job %s: %s", job.id, exc)
            continue
        try:
            send(job.id)
        except Exception as exc:  # noqa: BLE001 - broker down: give the token back, try next pass
            report["errors"] += 1
            log.warning("reconcile: cannot send job %s: %s", job.id, exc)
            try:
                session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.dispatched_at == t)
                    .values(dispatched_at=previous)
                    .execution_options(synchronize_session=False)
                )
                session.commit()
            except Exception:  # noqa: BLE001
                session.rollback()
            continue
        report["expired" if expired else "queued"].append(job.id)
        log.info("reconcile: re-sent %s job %s", "lease-expired" if expired else "queued", job.id)
    return report


def reconcile_deliveries(
    session: Session,
    settings: Settings,
    *,
    send: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> dict:
    """One pass over webhook deliveries. Returns {"sent": [ids re-sent], "skipped": n, "errors": n}."""
    if send is None:
        from core.queue import send_delivery

        def send(delivery_id: str) -> None:
            send_delivery(delivery_id, settings)

    t = now or utcnow()
    due = deliveries.due_deliveries(session, requeue_after_seconds=settings.requeue_after_seconds, now=t)
    session.commit()
    take = lambda delivery_id, previous: deliveries.take_send_token(session, delivery_id, previous, t)
    return _resend(due, take, send, "webhook delivery", "webhook deliveries")


def reconcile_imports(
    session: Session,
    settings: Settings,
    *,
    send: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> dict:
    """One pass over dataset imports. Returns {"sent": [ids re-sent], "skipped": n, "errors": n}."""
    if send is None:
        from core.queue import send_import

        def send(dataset_id: str) -> None:
            send_import(dataset_id, settings)

    t = now or utcnow()
    stale = imports.stale_imports(session, requeue_after_seconds=settings.requeue_after_seconds, now=t)
    session.commit()
    take = lambda dataset_id, seen: imports.take_send_token(session, dataset_id, seen, t)
    return _resend(stale, take, send, "the import of dataset", "dataset imports")


def _resend(
    candidates: list[tuple[str, object]],
    take_token: Callable[[str, object], bool],
    send: Callable[[str], None],
    one: str,
    many: str,
) -> dict:
    """Send each candidate whose send token this pass takes (a conditional update: two reconcilers never
    both send one); stop at the first broker failure (tried again after requeue_after_seconds)."""
    report: dict = {"sent": [], "skipped": 0, "errors": 0}
    for item_id, seen in candidates:
        if not take_token(item_id, seen):
            report["skipped"] += 1
            continue
        try:
            send(item_id)
        except Exception as exc:  # noqa: BLE001 - broker down: tried again after requeue_after_seconds
            report["errors"] += 1
            log.warning("reconcile: cannot send %s %s: %s", one, item_id, exc)
            break
        report["sent"].append(item_id)
    if report["sent"]:
        log.info("reconcile: re-sent %d %s", len(report["sent"]), many)
    return report


class ReconcilerThread(threading.Thread):
    """Calls `reconcile_once` every `settings.reconcile_seconds` until stopped; survives any error."""

    def __init__(self, session_factory: Callable[[], Session], settings: Settings, send=None) -> None:
        super().__init__(name="simtrain-reconciler", daemon=True)
        self.session_factory = session_factory
        self.settings = settings
        self.send = send
        self._stop_event = threading.Event()
        self.passes = 0

    def stop(self) -> None:
        self._stop_event.set()

    def _reconcile_deliveries(self, session: Session) -> None:
        """The webhook pass; its failure never delays the jobs' pass."""
        try:
            reconcile_deliveries(session, self.settings)
        except Exception as exc:  # noqa: BLE001
            log.warning("reconcile: webhook deliveries pass failed: %s", str(exc).splitlines()[0][:200])
            with contextlib.suppress(Exception):
                session.rollback()

    def _reconcile_imports(self, session: Session) -> None:
        """The dataset imports' pass; its failure never delays the jobs' pass."""
        try:
            reconcile_imports(session, self.settings)
        except Exception as exc:  # noqa: BLE001
            log.warning("reconcile: dataset imports pass failed: %s", str(exc).splitlines()[0][:200])
            with contextlib.suppress(Exception):
                session.rollback()

    def run(self) -> None:
        interval = self.settings.reconcile_seconds
        failures = 0
        while not self._stop_event.wait(
            interval if failures == 0 else min(interval * 4, interval * 2**failures)
        ):
            session = self.session_factory()
            try:
                report = reconcile_once(session, self.settings, send=self.send)
                self._reconcile_deliveries(session)
                self._reconcile_imports(session)
                resend_stale_studies(session, self.settings)  # stale tuning studies (never raises)
                failures = 0
                self.passes += 1
                if report["queued"] or report["expired"] or report["errors"]:
                    log.info("reconcile: %s", report)
            except Exception as exc:  # noqa: BLE001 - database down: back off, try again
                failures += 1
                log.warning(
                    "reconcile pass failed (%d in a row): %s",
                    failures,
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                )
                with contextlib.suppress(Exception):
                    session.rollback()
            finally:
                session.close()
