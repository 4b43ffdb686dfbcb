"""What clients send to `/v1/webhooks` and what they get back; every string has a length limit.

    body = WebhookCreate.model_validate({"url": "https://hooks.example.com/x", "events": ["job.*"]})
    WebhookCreated   # the answer to POST: WebhookPublic and the secret, shown this once
    WebhookPublic, WebhookList, DeliveryPublic, DeliveryList

The routes are in `api/routes/webhooks.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.webhooks.events import EVENT_TYPES, validate_patterns

__all__ = [
    "AttemptPublic",
    "DeliveryList",
    "DeliveryPublic",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookList",
    "WebhookPublic",
]

EventPattern = Annotated[str, Field(min_length=1, max_length=64)]


class WebhookCreate(BaseModel):
    """`POST /v1/webhooks`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=1,
        max_length=2000,
        description="where events are POSTed: https (http only to an address SIMTRAIN_FETCH_ALLOW opens)",
    )
    events: list[EventPattern] = Field(
        min_length=1,
        max_length=len(EVENT_TYPES),
        description=f"event names ({', '.join(EVENT_TYPES)}), `prefix.*` patterns (`job.*`) or `*`",
    )
    description: str = Field(default="", max_length=200)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        return validate_patterns(value)


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="`whsec_` + base64: verify each delivery's `webhook-signature` with it (Standard "
        "Webhooks). Shown only in this answer; simtrain keeps it server-side to sign deliveries."
    )


class WebhookList(BaseModel):
    items: list[WebhookPublic]
    next_cursor: str | None = None


class AttemptPublic(BaseModel):
    attempt: int
    at: datetime | None = Field(description="when it started (null: its worker stopped before recording)")
    status_code: int | None = Field(description="the receiver's HTTP status; null when it did not answer")
    error: str | None
    duration_ms: int | None


class DeliveryPublic(BaseModel):
    id: str = Field(description="the `webhook-id` header of every attempt: de-duplicate on it")
    webhook_id: str
    event_type: str
    status: str = Field(description="pending (see next_attempt_at), succeeded or failed")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[AttemptPublic]


class DeliveryList(BaseModel):
    items: list[DeliveryPublic]
    next_cursor: str | None = None
