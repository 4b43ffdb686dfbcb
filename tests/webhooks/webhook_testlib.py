"""Helpers of the webhook tests: create a webhook through the API, emit an event, read a delivery row, and
verify a received request with the reference verifier.

    hook = create_hook(client, auth, receiver.url, ["job.*"])        # the POST answer, secret included
    [delivery_id] = emit_event(sessionmaker, tenant_id, "dataset.ready", {"id": "d1"})   # committed
    row = delivery_row(sessionmaker, delivery_id)                    # the row's columns as a dict
    payload = verify(hook["secret"], received)                       # standardwebhooks.Webhook.verify

`verify` uses the `standardwebhooks` package (the Standard Webhooks reference library for Python).
"""

from __future__ import annotations

from typing import Any

from standardwebhooks.webhooks import Webhook as ReferenceVerifier

__all__ = ["create_hook", "delivery_row", "emit_event", "fields", "verify"]


def create_hook(client: Any, auth: dict[str, str], url: str, events=("job.*",), **extra: Any) -> dict:
    r = client.post("/v1/webhooks", json={"url": url, "events": list(events), **extra}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


def fields(response: Any) -> list[str]:
    """The fields a 422 answer names."""
    assert response.status_code == 422, response.text
    return [d["field"] for d in response.json()["error"]["details"]]


def emit_event(sessionmaker: Any, tenant_id: str, event_type: str, payload: dict | None = None) -> list[str]:
    from core.webhooks.outbox import emit

    with sessionmaker() as s:
        ids = emit(s, tenant_id, event_type, payload or {"id": "x"})
        s.commit()
    return ids


def delivery_row(sessionmaker: Any, delivery_id: str) -> dict:
    from core.db.models import WebhookDelivery

    with sessionmaker() as s:
        row = s.get(WebhookDelivery, delivery_id)
        assert row is not None, delivery_id
        return {c.name: getattr(row, c.name) for c in WebhookDelivery.__table__.columns}


def verify(secret: str, received: Any) -> Any:
    """The parsed body when the signature verifies; WebhookVerificationError otherwise."""
    return ReferenceVerifier(secret).verify(received.body, received.headers)
