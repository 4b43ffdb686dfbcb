"""Webhooks: create (the secret shown once), list, get, delete, and each one's deliveries.

    POST /v1/webhooks {"url": "https://hooks.example.com/simtrain", "events": ["job.*"]}  -> 201 + secret
    GET  /v1/webhooks/{id}/deliveries      # status, attempts, last error, next try, each attempt

Deliveries are made by the worker (`core.webhooks`), never here; another tenant's webhook is a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import select

from api.deps import CurrentTenant, SessionDep, SettingsDep
from api.pagination import CursorParam, keyset_page
from api.routes import API_PREFIX
from api.session_route import SessionReleasingRoute
from core.db.models import Webhook, WebhookDelivery
from core.webhooks.registry import create_webhook, delete_webhook, get_webhook
from core.webhooks.schemas import (
    DeliveryList,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookPublic,
)

router = APIRouter(prefix=f"{API_PREFIX}/webhooks", tags=["webhooks"], route_class=SessionReleasingRoute)

Limit = Annotated[int, Query(ge=1, le=100)]


def webhook_public(hook: Webhook) -> WebhookPublic:
    return WebhookPublic(
        id=hook.id, url=hook.url, events=list(hook.events), description=hook.description,
        created_at=hook.created_at,
    )  # fmt: skip


def delivery_public(row: WebhookDelivery) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id, webhook_id=row.webhook_id, event_type=row.event_type, status=row.status,
        attempts=row.attempts, last_status_code=row.last_status_code, last_error=row.last_error,
        next_attempt_at=row.next_attempt_at, created_at=row.created_at, finished_at=row.finished_at,
        payload=row.payload, attempt_log=list(row.attempt_log or []),
    )  # fmt: skip


@router.post(
    "",
    response_model=WebhookCreated,
    status_code=status.HTTP_201_CREATED,
    responses={
        409: {"description": "the tenant has SIMTRAIN_MAX_WEBHOOKS_PER_TENANT webhooks already"},
        422: {"description": "a refused URL or an unknown event (the message names the field)"},
    },
)
def create(body: WebhookCreate, session: SessionDep, settings: SettingsDep, tenant: CurrentTenant):
    hook = create_webhook(session, settings, tenant, body)
    return WebhookCreated(**webhook_public(hook).model_dump(), secret=hook.secret)


@router.get("", response_model=WebhookList)
def list_webhooks(
    session: SessionDep, tenant: CurrentTenant, limit: Limit = 50, cursor: CursorParam = None
) -> WebhookList:
    page = keyset_page(
        session, select(Webhook).where(Webhook.tenant_id == tenant), limit=limit, cursor=cursor
    )
    return WebhookList(items=[webhook_public(h) for h in page.rows], next_cursor=page.next_cursor)


@router.get("/{webhook_id}", response_model=WebhookPublic)
def get(webhook_id: str, session: SessionDep, tenant: CurrentTenant) -> WebhookPublic:
    return webhook_public(get_webhook(session, tenant, webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(webhook_id: str, session: SessionDep, tenant: CurrentTenant) -> Response:
    delete_webhook(session, tenant, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(
    webhook_id: str, session: SessionDep, tenant: CurrentTenant, limit: Limit = 50, cursor: CursorParam = None
) -> DeliveryList:
    hook = get_webhook(session, tenant, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)
    page = keyset_page(session, query, limit=limit, cursor=cursor)
    return DeliveryList(items=[delivery_public(r) for r in page.rows], next_cursor=page.next_cursor)
