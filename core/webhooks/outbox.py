"""The transactional outbox of webhooks: an event becomes one `webhook_deliveries` row per matching webhook
of the tenant, written in the caller's transaction, and its delivery task is sent once that commits.

    emit(session, tenant_id, "dataset.ready", {"id": ds.id, ...})   # then session.commit()
    emit_job_end(session, job_id)        # `core.db.jobs._end` calls it with every terminal transition

Nothing is delivered from here: after the commit the `simtrain.deliver_webhook` task of each new row is
sent (`core.queue.send_delivery`, best effort: a broker that is down leaves the rows to the worker's
reconciler); a rollback drops them with the transaction. The body every attempt sends is
`{"type", "timestamp", "data"}` (the Standard Webhooks payload shape); `data` is the caller's payload.
"""

from __future__ import annotations

import logging
import math
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from core.db.models import DeliveryStatus, Job, Webhook, WebhookDelivery
from core.db.types import now as utcnow
from core.jsonsafe import json_safe
from core.webhooks.events import EVENT_TYPES, matches

__all__ = ["emit", "emit_job_end", "iso", "job_payload", "new_message_id"]

log = logging.getLogger("simtrain.webhooks")

_PENDING = "simtrain.webhooks.pending"
_LISTENING = "simtrain.webhooks.listening"


def new_message_id() -> str:
    """A delivery id: `msg_` + 32 hex digits (the `webhook-id` header, the same for every attempt)."""
    return f"msg_{uuid.uuid4().hex}"


def iso(when: datetime | None) -> str | None:
    return when.isoformat().replace("+00:00", "Z") if when is not None else None


def emit(session: Session, tenant_id: str, event_type: str, payload: dict[str, Any]) -> list[str]:
    """Add a delivery of `event_type` for every webhook of the tenant that wants it; their ids. The rows
    are the caller's to commit (or roll back) with the change they report."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event_type!r}")
    hooks = session.execute(select(Webhook.id, Webhook.events).where(Webhook.tenant_id == tenant_id)).all()
    targets = [h.id for h in hooks if matches(h.events or [], event_type)]
    if not targets:
        return []
    t = utcnow()
    body = {"type": event_type, "timestamp": iso(t), "data": json_safe(payload)}
    ids = []
    for webhook_id in targets:
        delivery = WebhookDelivery(
            id=new_message_id(), webhook_id=webhook_id, event_type=event_type, payload=body,
            status=DeliveryStatus.pending.value, attempts=0, attempt_log=[], next_attempt_at=t,
            dispatched_at=t, created_at=t, updated_at=t,
        )  # fmt: skip
        session.add(delivery)
        ids.append(delivery.id)
    _send_after_commit(session, ids)
    return ids


def emit_job_end(session: Session, job_id: str) -> list[str]:
    """`job.succeeded` / `job.failed` / `job.cancelled` for a job that just reached that state."""
    job = session.execute(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if job is None:
        return []
    return emit(session, job.tenant_id, f"job.{job.status}", job_payload(job))


def job_payload(job: Job) -> dict[str, Any]:
    """What a job event tells: id, status, error, the final metrics' numbers and the timestamps."""
    error = {"code": job.error_code, "message": job.error_message or ""} if job.error_code else None
    return {
        "id": job.id, "object": "job", "status": job.status, "error": error,
        "metrics": _numbers(job.final_metrics), "dataset": job.dataset_ref,
        "comparison_id": job.comparison_id, "variant": job.variant, "epoch": job.epoch, "epochs": job.epochs,
        "attempts": job.attempts, "train_seconds": job.train_seconds, "device": job.device,
        "created_at": iso(job.created_at), "started_at": iso(job.started_at), "finished_at": iso(job.finished_at),
    }  # fmt: skip


def _numbers(metrics: dict[str, Any] | None) -> dict[str, float]:
    """The finite numbers of a metrics dict (the confusion matrix and other nested values left out)."""
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[str(key)] = value
    return out


def _send_after_commit(session: Session, ids: list[str]) -> None:
    session.info.setdefault(_PENDING, []).extend(ids)
    if not session.info.get(_LISTENING):
        event.listen(session, "after_commit", _send_pending)
        event.listen(session, "after_rollback", _drop_pending)
        session.info[_LISTENING] = True


def _send_pending(session: Session) -> None:
    """After the commit: send each new delivery's task; after a broker failure the reconciler sends the
    rest (their `dispatched_at` is old enough by then)."""
    from core.queue import send_delivery  # Celery: imported when there is something to send

    ids = session.info.pop(_PENDING, [])
    for delivery_id in ids:
        try:
            send_delivery(delivery_id)
        except Exception as exc:  # noqa: BLE001 - any broker failure: the reconciler sends it later
            log.warning("webhook delivery %s not sent (%s); the reconciler sends it", delivery_id, exc)
            return


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
