"""Webhooks: receivers of signed deletion-request events (admin and compliance only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import delete, select

from api.deps import Compliance, SessionDep, SettingsDep
from api.schemas import CONFLICT, ERRORS, NOT_FOUND
from api.webhooks.schemas import (
    DeliveriesPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhooksPublic,
    WebhookUpdate,
)
from core.audit.log import append as audit
from core.errors import Conflict, NotFound
from core.webhooks import encrypt_secret, new_secret
from models.base import new_id, utcnow
from models.webhooks import Webhook, WebhookDelivery

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERRORS)


def _get(session: SessionDep, webhook_id: str) -> Webhook:
    found = session.get(Webhook, webhook_id)
    if found is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return found


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(
    body: WebhookCreate, session: SessionDep, settings: SettingsDep, key: Compliance
) -> WebhookCreated:
    """Register a receiver; the response holds its signing secret, shown this once."""
    secret = new_secret()
    hook = Webhook(
        id=new_id("wh"),
        url=body.url,
        secret_encrypted=encrypt_secret(settings, secret),
        events=body.events,
        description=body.description,
        active=body.active,
        created_at=utcnow(),
        created_by=key.id,
    )
    session.add(hook)
    session.flush()
    audit(session, key.id, "webhook.created", "webhook", hook.id, {"events": body.events})
    return WebhookCreated(**WebhookPublic.model_validate(hook).model_dump(), secret=secret)


@router.get("", response_model=WebhooksPublic)
def list_webhooks(session: SessionDep, _: Compliance) -> WebhooksPublic:
    hooks = session.scalars(select(Webhook).order_by(Webhook.id)).all()
    return WebhooksPublic(data=[WebhookPublic.model_validate(h) for h in hooks], count=len(hooks))


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=NOT_FOUND)
def get_webhook(webhook_id: str, session: SessionDep, _: Compliance) -> WebhookPublic:
    return WebhookPublic.model_validate(_get(session, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookPublic, responses=NOT_FOUND)
def update_webhook(
    webhook_id: str, body: WebhookUpdate, session: SessionDep, key: Compliance
) -> WebhookPublic:
    hook = _get(session, webhook_id)
    changes = body.model_dump(exclude_none=True)
    for name, value in changes.items():
        setattr(hook, name, value)
    audit(session, key.id, "webhook.updated", "webhook", hook.id, {"fields": sorted(changes)})
    return WebhookPublic.model_validate(hook)


@router.post("/{webhook_id}/rotate-secret", response_model=WebhookCreated, responses=NOT_FOUND)
def rotate_secret(
    webhook_id: str, session: SessionDep, settings: SettingsDep, key: Compliance
) -> WebhookCreated:
    """A new signing secret, shown this once; the old one stops at once (deliveries not
    yet sent, retries included, are signed with the new one when they go)."""
    hook = _get(session, webhook_id)
    secret = new_secret()
    hook.secret_encrypted = encrypt_secret(settings, secret)
    audit(session, key.id, "webhook.secret_rotated", "webhook", hook.id, {})
    return WebhookCreated(**WebhookPublic.model_validate(hook).model_dump(), secret=secret)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_webhook(webhook_id: str, session: SessionDep, key: Compliance) -> Response:
    """Remove the receiver and its delivery history (pending ones are never sent)."""
    hook = _get(session, webhook_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    session.delete(hook)
    audit(session, key.id, "webhook.deleted", "webhook", webhook_id, {})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesPublic, responses=NOT_FOUND)
def list_deliveries(
    webhook_id: str,
    session: SessionDep,
    _: Compliance,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveriesPublic:
    """Newest first: what was sent, how many attempts, the receiver's last answer."""
    _get(session, webhook_id)
    stmt = (
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if state:
        stmt = stmt.where(WebhookDelivery.state == state)
    rows = session.scalars(stmt).all()
    return DeliveriesPublic(data=[DeliveryPublic.model_validate(r) for r in rows], count=len(rows))


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/retry",
    response_model=DeliveryPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def retry_delivery(
    webhook_id: str, delivery_id: str, session: SessionDep, _: Compliance
) -> DeliveryPublic:
    """Send a given-up (or pending) delivery again at the next sweep, attempts reset."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.webhook_id != webhook_id:
        raise NotFound(f"delivery {delivery_id} of webhook {webhook_id} not found")
    if delivery.state == "delivered":
        raise Conflict(f"delivery {delivery_id} was already delivered")
    delivery.state, delivery.attempts, delivery.next_attempt_at = "pending", 0, utcnow()
    return DeliveryPublic.model_validate(delivery)
