"""One delivery task's work: claim the row, send one signed attempt, record it, say when to try again.

    result = deliver_once(session, "msg_...", owner="worker-1:pid", settings=settings)
    result.outcome      # "succeeded" | "failed" | "retry" | a ClaimOutcome ("done", "not_due", ...)
    result.retry_in     # seconds until the next attempt, for `outcome == "retry"`

The worker's `simtrain.deliver_webhook` task calls it and re-sends itself with that countdown. The row is
leased for the attempt's bound plus a margin (`lease_seconds`): a worker killed mid-attempt leaves a lease
that expires, and the reconciler sends the delivery again, with the same `webhook-id`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.fetch import UrlPolicy
from core.settings import Settings
from core.webhooks import state
from core.webhooks.http_post import post_signed

__all__ = ["DeliveryResult", "deliver_once", "lease_seconds"]

log = logging.getLogger("simtrain.webhooks")

LEASE_MARGIN_S = 10.0


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str
    retry_in: float | None = None


def lease_seconds(settings: Settings) -> float:
    """How long a worker holds a delivery: one attempt's bound and a margin to record it."""
    return settings.webhook_timeout_s + LEASE_MARGIN_S


def deliver_once(
    session: Session, delivery_id: str, *, owner: str, settings: Settings, policy: UrlPolicy | None = None
) -> DeliveryResult:
    """See the module docstring. Database errors propagate (the task retries); nothing else does."""
    outcome, target = state.claim(
        session,
        delivery_id,
        owner,
        lease_seconds=lease_seconds(settings),
        max_attempts=settings.webhook_max_attempts,
    )
    if target is None:
        log.info("webhook delivery %s: not sent (%s)", delivery_id, outcome.value)
        return DeliveryResult(outcome.value)
    attempt = post_signed(target, policy=policy or UrlPolicy.from_settings(settings), settings=settings)
    retry_in = state.record_attempt(session, delivery_id, owner, attempt, settings)
    what = f"HTTP {attempt.status_code}" if attempt.status_code is not None else attempt.error
    log.info(
        "webhook delivery %s: attempt %d in %d ms: %s", delivery_id, target.attempt, attempt.duration_ms, what
    )
    if attempt.ok:
        return DeliveryResult("succeeded")
    return DeliveryResult("retry", retry_in) if retry_in is not None else DeliveryResult("failed")
