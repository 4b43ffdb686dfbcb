"""The delivery state machine: every change is one conditional UPDATE, so the database decides races.

    pending --claim--> pending, leased --record_attempt--> succeeded | failed | pending (next_attempt_at)
    pending, lease expired (the worker died mid-attempt) --claim--> leased again: the same id sent again

    outcome, target = claim(session, "msg_...", owner, lease_seconds=25)     # commits
    record_attempt(session, "msg_...", owner, attempt, settings)            # commits; the next try or None
    due_deliveries(session, requeue_after_seconds=120)    # what the reconciler re-sends

`succeeded` and `failed` never change. A claim counts an attempt, so a delivery whose worker keeps dying
still ends after `webhook_max_attempts`; such an attempt is recorded as interrupted by the next one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from core.db.models import DeliveryStatus, Webhook, WebhookDelivery
from core.db.types import now as utcnow
from core.settings import Settings

__all__ = [
    "Attempt",
    "ClaimOutcome",
    "DeliveryTarget",
    "claim",
    "due_deliveries",
    "record_attempt",
    "retry_delay",
    "take_send_token",
]

EARLY_TOLERANCE = timedelta(seconds=1)  # a retry message may arrive a little before its time
INTERRUPTED = "interrupted: the worker sending it stopped before an answer was recorded"


class ClaimOutcome(StrEnum):
    claimed = "claimed"
    done = "done"  # succeeded or failed: nothing to send
    not_due = "not_due"  # its next attempt is later (an early or duplicate message)
    leased_elsewhere = "leased_elsewhere"  # another worker is sending it
    missing = "missing"  # no such delivery (its webhook was deleted)


@dataclass(frozen=True)
class DeliveryTarget:
    """What one attempt sends: where, signed with what, the body, and which attempt it is."""

    msg_id: str
    url: str
    secret: str
    payload: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class Attempt:
    """The result of one attempt: the HTTP status (None when there was no answer) and what went wrong."""

    status_code: int | None
    error: str | None
    duration_ms: int
    at: datetime

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


def claim(
    s: Session,
    delivery_id: str,
    owner: str,
    *,
    lease_seconds: float,
    max_attempts: int,
    now: datetime | None = None,
) -> tuple[ClaimOutcome, DeliveryTarget | None]:
    """Take a due delivery for `owner` (one attempt more). A delivery out of attempts (its last worker
    died mid-attempt) ends `failed` instead. Commits."""
    t = now or utcnow()
    free = or_(WebhookDelivery.lease_owner.is_(None), WebhookDelivery.lease_expires_at < t)
    res = s.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id[:40],
            WebhookDelivery.status == DeliveryStatus.pending.value,
            WebhookDelivery.next_attempt_at <= t + EARLY_TOLERANCE,
            WebhookDelivery.attempts < max_attempts,
            free,
        )
        .values(
            lease_owner=owner,
            lease_expires_at=t + timedelta(seconds=lease_seconds),
            attempts=WebhookDelivery.attempts + 1,
            updated_at=t,
        )
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        s.rollback()
        return _why_not(s, delivery_id[:40], t, max_attempts), None
    row = s.execute(
        select(WebhookDelivery.payload, WebhookDelivery.attempts, Webhook.url, Webhook.secret)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    s.commit()
    return ClaimOutcome.claimed, DeliveryTarget(delivery_id, row.url, row.secret, row.payload, row.attempts)


def _why_not(s: Session, delivery_id: str, t: datetime, max_attempts: int) -> ClaimOutcome:
    row = s.execute(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)).scalar_one_or_none()
    if row is None or row.status != DeliveryStatus.pending.value:
        s.rollback()
        return ClaimOutcome.missing if row is None else ClaimOutcome.done
    if row.lease_owner is not None and row.lease_expires_at is not None and row.lease_expires_at >= t:
        s.rollback()
        return ClaimOutcome.leased_elsewhere
    if row.attempts < max_attempts:
        s.rollback()
        return ClaimOutcome.not_due
    ended = {"status": DeliveryStatus.failed.value, "last_error": INTERRUPTED, "last_status_code": None}
    idle = {"next_attempt_at": None, "lease_owner": None, "lease_expires_at": None}
    s.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.pending.value)
        .values(attempt_log=_with_interrupted(row.attempt_log, row.attempts), finished_at=t, updated_at=t,
                **ended, **idle)
        .execution_options(synchronize_session=False)
    )  # fmt: skip
    s.commit()
    return ClaimOutcome.done


def retry_delay(attempts: int, settings: Settings, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `attempts` failed ones: exponential, capped, with jitter
    (between half and all of `webhook_backoff_s * 2**(attempts-1)`)."""
    ceiling = min(settings.webhook_backoff_max_s, settings.webhook_backoff_s * 2 ** max(attempts - 1, 0))
    return (rng or random).uniform(ceiling / 2, ceiling)


def record_attempt(
    s: Session, delivery_id: str, owner: str, attempt: Attempt, settings: Settings
) -> float | None:
    """Store the attempt and what follows: succeeded, failed (out of attempts) or the next try. Returns
    the seconds until that next try, None when the delivery ended or is no longer ours. Commits."""
    row = s.execute(
        select(WebhookDelivery.attempts, WebhookDelivery.attempt_log).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.lease_owner == owner
        )
    ).one_or_none()
    if row is None:
        s.rollback()
        return None
    values, delay = _after(row.attempts, attempt, settings)
    log = _with_interrupted(row.attempt_log, row.attempts - 1) + [_entry(row.attempts, attempt)]
    res = s.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_owner == owner)
        .values(attempt_log=log, lease_owner=None, lease_expires_at=None, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    s.commit()
    return delay if res.rowcount == 1 else None


def _after(attempts: int, attempt: Attempt, settings: Settings) -> tuple[dict[str, Any], float | None]:
    """The row's new values after this attempt, and the delay before the next one (None: no next)."""
    values: dict[str, Any] = {"last_status_code": attempt.status_code, "last_error": attempt.error}
    if attempt.ok or attempts >= settings.webhook_max_attempts:
        status = DeliveryStatus.succeeded if attempt.ok else DeliveryStatus.failed
        return values | {"status": status.value, "next_attempt_at": None, "finished_at": utcnow()}, None
    delay = retry_delay(attempts, settings)
    next_at = utcnow() + timedelta(seconds=delay)
    # dispatched_at = next_at: the retry message is due then; the reconciler waits for it that long
    return values | {"next_attempt_at": next_at, "dispatched_at": next_at}, delay


def _with_interrupted(log: list[dict[str, Any]] | None, attempts: int) -> list[dict[str, Any]]:
    """The attempt log, completed up to `attempts` with the attempts whose worker died (never recorded)."""
    entries = list(log or [])
    return entries + [_entry(n, None) for n in range(len(entries) + 1, attempts + 1)]


def _entry(number: int, attempt: Attempt | None) -> dict[str, Any]:
    if attempt is None:
        return {"attempt": number, "at": None, "status_code": None, "error": INTERRUPTED, "duration_ms": None}
    return {
        "attempt": number,
        "at": attempt.at.isoformat().replace("+00:00", "Z"),
        "status_code": attempt.status_code,
        "error": attempt.error,
        "duration_ms": attempt.duration_ms,
    }


def due_deliveries(
    s: Session, *, requeue_after_seconds: float, now: datetime | None = None, limit: int = 500
) -> list[tuple[str, datetime | None]]:
    """(id, dispatched_at) of pending deliveries that are due, not being sent (no live lease) and whose
    task was not sent within `requeue_after_seconds`: the broker may have lost it, or its worker died."""
    t = now or utcnow()
    cutoff = t - timedelta(seconds=requeue_after_seconds)
    rows = s.execute(
        select(WebhookDelivery.id, WebhookDelivery.dispatched_at)
        .where(
            WebhookDelivery.status == DeliveryStatus.pending.value,
            WebhookDelivery.next_attempt_at <= t,
            or_(WebhookDelivery.lease_owner.is_(None), WebhookDelivery.lease_expires_at < t),
            or_(WebhookDelivery.dispatched_at.is_(None), WebhookDelivery.dispatched_at < cutoff),
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    return [(r.id, r.dispatched_at) for r in rows]


def take_send_token(s: Session, delivery_id: str, previous: datetime | None, t: datetime) -> bool:
    """Move `dispatched_at` from `previous` to `t` unless another reconciler did first. Commits."""
    same = (
        WebhookDelivery.dispatched_at.is_(None)
        if previous is None
        else WebhookDelivery.dispatched_at == previous
    )
    res = s.execute(
        update(WebhookDelivery)
        .where(and_(WebhookDelivery.id == delivery_id, same))
        .values(dispatched_at=t)
        .execution_options(synchronize_session=False)
    )
    s.commit()
    return res.rowcount == 1
