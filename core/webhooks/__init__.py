"""Signed webhooks: a tenant's endpoints, the transactional outbox of events, and their delivery.

    from core.webhooks.outbox import emit
    emit(session, tenant_id, "dataset.ready", {"id": ...})    # in the transaction of the change; commit

- `events.py`: the event names and `prefix.*` patterns a webhook subscribes with;
- `urls.py`: the webhook URL rule on top of the one allow-list of user-given URLs (`core.fetch`);
- `signing.py`: `whsec_` secrets and the Standard Webhooks signature headers;
- `outbox.py`: `emit` (one `webhook_deliveries` row per matching webhook, its task sent after commit);
- `state.py`: the delivery state machine (claim with a lease, record an attempt, backoff, what is due);
- `http_post.py`: one signed, bounded POST; `deliver.py`: one delivery task's work;
- `registry.py` and `schemas.py`: the webhooks themselves, for the `/v1/webhooks` routes.

The worker's `simtrain.deliver_webhook` task runs `deliver.deliver_once`; its reconciler re-sends what is
due and not in flight (`state.due_deliveries`).
"""

from core.webhooks.events import EVENT_TYPES, matches, validate_patterns
from core.webhooks.outbox import emit, emit_job_end

__all__ = ["EVENT_TYPES", "emit", "emit_job_end", "matches", "validate_patterns"]
