"""A tenant's webhooks in the database: create (URL checked, secret made), read, list, delete.

    hook = create_webhook(session, settings, tenant_id, WebhookCreate(...))   # commits
    hook.secret                                              # to show once, in the answer to POST
    hook = get_webhook(session, tenant_id, webhook_id)       # NotFound, also for another tenant's
    delete_webhook(session, tenant_id, webhook_id)           # its deliveries go with it; commits

The secret is stored as it is: the worker needs it to sign every delivery.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.db.models import Webhook, WebhookDelivery
from core.errors import Conflict, NotFound
from core.fetch import UrlPolicy
from core.settings import Settings
from core.webhooks.schemas import WebhookCreate
from core.webhooks.signing import new_secret
from core.webhooks.urls import check_webhook_url

__all__ = ["create_webhook", "delete_webhook", "get_webhook"]


def create_webhook(session: Session, settings: Settings, tenant_id: str, body: WebhookCreate) -> Webhook:
    """A new webhook (SpecError naming `url` when the allow-list refuses it; Conflict past the tenant's
    limit). Its `secret` attribute is the only time the secret leaves the server."""
    check_webhook_url(UrlPolicy.from_settings(settings), body.url, "url")
    count = session.execute(
        select(func.count()).select_from(Webhook).where(Webhook.tenant_id == tenant_id)
    ).scalar_one()
    if count >= settings.max_webhooks_per_tenant:
        raise Conflict(
            f"the tenant has {count} webhooks, the most allowed (SIMTRAIN_MAX_WEBHOOKS_PER_TENANT); "
            "delete one first"
        )
    hook = Webhook(
        tenant_id=tenant_id, url=body.url, events=list(body.events), description=body.description,
        secret=new_secret(),
    )  # fmt: skip
    session.add(hook)
    session.commit()
    return hook


def get_webhook(session: Session, tenant_id: str, webhook_id: str) -> Webhook:
    hook = session.execute(
        select(Webhook).where(Webhook.id == webhook_id[:64], Webhook.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if hook is None:
        raise NotFound(f"webhook {webhook_id[:64]!r} not found")
    return hook


def delete_webhook(session: Session, tenant_id: str, webhook_id: str) -> None:
    hook = get_webhook(session, tenant_id, webhook_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    session.execute(delete(Webhook).where(Webhook.id == hook.id, Webhook.tenant_id == tenant_id))
    session.commit()
