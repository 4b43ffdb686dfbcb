"""What the job and comparison routes share when they create work: sending training tasks (a broker that is
down leaves jobs queued for the worker's reconciler, with a warning event, instead of failing the request),
and the canonical request hash behind `Idempotency-Key` (`core.db.jobs.request_hash`, re-exported).

    dispatch(session, job_ids, settings)    # after the jobs are committed
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import Job
from core.db import jobs as jobstate
from core.db.jobs import request_hash
from core.queue import send_train
from core.settings import Settings

__all__ = ["dispatch", "request_hash"]

log = logging.getLogger("simtrain.api")

BROKER_DOWN = "the broker is unreachable; the job stays queued and is sent when it is back"


def dispatch(session: Session, job_ids: list[str], settings: Settings) -> None:
    """Send each job's task (to its queue, with its priority: `core.routing`) and mark it dispatched; after
    the first broker failure the rest wait for the reconciler. Commits."""
    specs = dict(session.execute(select(Job.id, Job.spec).where(Job.id.in_(job_ids))).tuples().all())
    for n, job_id in enumerate(job_ids):
        try:
            send_train(job_id, settings, spec=specs.get(job_id))
        except Exception as exc:  # noqa: BLE001 - any broker failure: the reconciler sends them later
            log.warning("could not dispatch job %s: %s", job_id, exc)
            for rest in job_ids[n:]:
                jobstate.add_event(
                    session,
                    rest,
                    "warning",
                    BROKER_DOWN,
                    {"reason": f"{type(exc).__name__}: {str(exc)[:300]}"},
                )
            break
        jobstate.mark_dispatched(session, job_id)
    session.commit()
