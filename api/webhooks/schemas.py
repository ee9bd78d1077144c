from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.schemas import ORMModel, RequestBody
from core.webhooks import EVENTS


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"webhook URLs must be http:// or https://, not {parts.scheme or 'none'}")
    if not parts.hostname:
        raise ValueError("webhook URL has no host")
    return value


# The known names in the OpenAPI schema (forms offer them as choices); the validator
# below still answers an unknown name with the whole list.
EVENT_ITEMS: dict[str, Any] = {"items": {"type": "string", "enum": list(EVENTS)}}


def _check_events(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(EVENTS))
    if unknown:
        raise ValueError(f"unknown events {unknown}; known: {', '.join(EVENTS)}")
    return sorted(set(value))


class WebhookCreate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(
        default_factory=list,
        max_length=len(EVENTS),
        description="Empty: every event",
        json_schema_extra=EVENT_ITEMS,
    )
    description: str = Field(default="", max_length=200)
    active: bool = True

    _url = field_validator("url")(_check_url)
    _events = field_validator("events")(_check_events)


class WebhookUpdate(RequestBody):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(
        default=None, max_length=len(EVENTS), json_schema_extra=EVENT_ITEMS
    )
    description: str | None = Field(default=None, max_length=200)
    active: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_events(value)


class WebhookPublic(ORMModel):
    id: str
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime
    created_by: str | None


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="Shown once: keep it to verify X-Expunge-Signature")


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]
    count: int


class DeliveryPublic(ORMModel):
    id: str
    webhook_id: str
    event: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
    count: int
