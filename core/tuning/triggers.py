"""What sends a study's step (`simtrain.tuning_step`) besides its creation: the end of one of its trial
jobs (the worker, after running a job) and the reconciler (active studies not stepped lately).

    after_job(session_factory, job_id)          # the worker, after `run_job`: never raises
    resend_stale(session, settings)             # the worker's reconciler, each pass

`resend_stale` sends the step of every active study whose last step ended (or that was created) more than
`settings.requeue_after_seconds` ago and that was not sent one since; a conditional UPDATE of
`dispatched_at` is the token, so reconcilers in several workers send it once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.db.models import Job, TuningStudy
from core.db.types import now as utcnow
from core.settings import Settings, get_settings
from core.status import JOB_TERMINAL
from core.tuning.status import TUNING_ACTIVE

__all__ = ["after_job", "resend_stale", "study_of"]

log = logging.getLogger("simtrain.tuning")


def study_of(spec: dict[str, Any] | None) -> str | None:
    """The tuning study a job spec belongs to (`metadata.tuning.study`), if any."""
    link = ((spec or {}).get("metadata") or {}).get("tuning")
    return str(link["study"]) if isinstance(link, dict) and link.get("study") else None


def _default_send(settings: Settings) -> Callable[[str], None]:
    from core.queue import send_tuning_step

    return lambda study_id: send_tuning_step(study_id, settings)


def after_job(
    factory: Callable[[], Session], job_id: str, *, send: Callable[[str], None] | None = None
) -> None:
    """When `job_id` is a tuning trial that has ended, send its study's step. Never raises (the
    reconciler sends the step later when this one is lost)."""
    try:
        with factory() as session:
            row = session.execute(select(Job.status, Job.spec).where(Job.id == job_id)).first()
        study_id = study_of(row.spec) if row is not None and row.status in JOB_TERMINAL else None
        if study_id is not None:
            (send or _default_send(get_settings()))(study_id)
    except Exception as exc:  # noqa: BLE001 - a missed trigger is re-sent by the reconciler
        log.warning("job %s: could not send its tuning study's step: %s", job_id, exc)


def resend_stale(
    session: Session,
    settings: Settings,
    *,
    send: Callable[[str], None] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """One reconciler pass over active studies; returns the ids whose step was sent. Never raises (a
    database that is down: nothing is sent, the next pass tries again)."""
    try:
        return _resend(session, settings, send or _default_send(settings), now or utcnow())
    except Exception as exc:  # noqa: BLE001 - the reconciler's other passes go on
        log.warning(
            "reconcile: tuning studies pass failed: %s", str(exc).splitlines()[0][:200] if str(exc) else exc
        )
        with contextlib.suppress(Exception):
            session.rollback()
        return []


def _resend(session: Session, settings: Settings, send: Callable[[str], None], t: datetime) -> list[str]:
    cutoff = t - timedelta(seconds=settings.requeue_after_seconds)
    stale = and_(
        TuningStudy.status.in_(TUNING_ACTIVE),
        or_(TuningStudy.stepped_at.is_(None), TuningStudy.stepped_at < cutoff),
        or_(TuningStudy.dispatched_at.is_(None), TuningStudy.dispatched_at < cutoff),
    )
    rows = session.execute(select(TuningStudy.id, TuningStudy.dispatched_at).where(stale)).all()
    session.commit()
    sent = []
    for study_id, previous in rows:
        same = (
            TuningStudy.dispatched_at.is_(None) if previous is None else TuningStudy.dispatched_at == previous
        )
        res = session.execute(
            update(TuningStudy).where(TuningStudy.id == study_id, same).values(dispatched_at=t)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        session.commit()
        if res.rowcount != 1:
            continue
        try:
            send(study_id)
        except Exception as exc:  # noqa: BLE001 - broker down: due again after requeue_after_seconds
            log.warning("reconcile: cannot send the step of tuning study %s: %s", study_id, exc)
            break
        sent.append(study_id)
    if sent:
        log.info("reconcile: re-sent the step of %d tuning studies", len(sent))
    return sent
