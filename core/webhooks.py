"""Webhooks on deletion-request state changes: an outbox, HMAC signatures, backoff.

``enqueue`` writes one delivery row per matching webhook in the caller's transaction (the
same one as the state change), so an event is announced if and only if it happened.
``deliver_due`` (run by the sweeper, in the API and in every worker) claims due rows with
a conditional UPDATE (two sweepers never send the same attempt), POSTs them and records
the outcome; failures are retried after ``backoff * 2**(attempt-1)`` seconds up to
``webhook_max_attempts``. Receivers check ``X-Expunge-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``"<X-Expunge-Timestamp>.<raw body>"`` under the webhook's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from datetime import timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.audit.events import subject_salt
from core.settings import Settings
from core.signing import canonical_json
from models.base import new_id, utcnow
from models.webhooks import Webhook, WebhookDelivery

log = logging.getLogger("expunge.webhooks")

# The request state changes and job endings a receiver can subscribe to (an empty
# filter means all).
EVENTS = tuple(
    f"deletion_request.{action}"
    for action in (
        "received",
        "planned",
        "approved",
        "batch_started",
        "verified",
        "item_failed",
        "completed",
        "failed",
        "rejected",
        "cancelled",
        "extended",
        "certificate_issued",
    )
) + tuple(f"job.{state}" for state in ("succeeded", "failed", "cancelled"))
SIGNATURE_HEADER = "X-Expunge-Signature"
TIMESTAMP_HEADER = "X-Expunge-Timestamp"


# --------------------------------------------------------------------------- secrets


def _cipher(settings: Settings) -> AESGCM:
    """A key derived from the deployment secret: a database dump alone reveals no secret."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"expunge webhook secrets v1"
    ).derive(subject_salt(settings))
    return AESGCM(key)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def encrypt_secret(settings: Settings, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = _cipher(settings).encrypt(nonce, secret.encode(), b"webhook")
    return base64.b64encode(nonce + sealed).decode()


def decrypt_secret(settings: Settings, stored: str) -> str:
    raw = base64.b64decode(stored)
    return _cipher(settings).decrypt(raw[:12], raw[12:], b"webhook").decode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC of ``timestamp.body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, tolerance: float = 300
) -> bool:
    """The receiver's check (the recipe in docs/deletion.md, in Python)."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


# --------------------------------------------------------------------------- outbox


def enqueue(session: Session, event: str, payload: dict[str, Any]) -> int:
    """One pending delivery per active webhook subscribed to ``event`` (caller commits)."""
    if event not in EVENTS:
        return 0
    hooks = session.execute(select(Webhook.id, Webhook.events).where(Webhook.active)).all()
    count = 0
    for hook_id, events in hooks:
        if events and event not in events:
            continue
        delivery_id = new_id("whd")
        session.add(
            WebhookDelivery(
                id=delivery_id,
                webhook_id=hook_id,
                event=event,
                payload={"id": delivery_id, "event": event, **payload},
                state="pending",
                attempts=0,
                next_attempt_at=utcnow(),
            )
        )
        count += 1
    return count


def backoff(settings: Settings, attempt: int) -> float:
    return min(
        settings.webhook_backoff_max_seconds,
        settings.webhook_backoff_seconds * 2 ** max(0, attempt - 1),
    )


def _claim(session: Session, settings: Settings, delivery_id: str, attempts: int) -> bool:
    """Take the next attempt; the lease keeps other sweepers off while it is in flight."""
    lease = utcnow() + timedelta(seconds=settings.webhook_timeout_seconds * 2 + 5)
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.attempts == attempts,
            WebhookDelivery.state == "pending",
        )
        .values(attempts=attempts + 1, next_attempt_at=lease)
    )
    session.commit()
    return bool(result.rowcount)


def _send(url: str, secret: str, delivery: WebhookDelivery, timeout: float) -> int:
    body = canonical_json(delivery.payload)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Expunge-Webhooks/1",
        "X-Expunge-Event": delivery.event,
        "X-Expunge-Delivery": delivery.id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    return response.status_code


def deliver_due(factory: sessionmaker[Session], settings: Settings, limit: int = 20) -> int:
    """Send due deliveries once each; returns how many were delivered this call."""
    delivered = 0
    with factory() as session:
        due = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= utcnow())
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        ).all()
        for delivery_id, attempts in due:
            if not _claim(session, settings, delivery_id, attempts):
                continue
            delivery = session.get(WebhookDelivery, delivery_id)
            hook = session.get(Webhook, delivery.webhook_id) if delivery else None
            if delivery is None:
                continue
            attempt = attempts + 1
            status, error = None, None
            if hook is None or not hook.active:
                error = "webhook deactivated"
            else:
                try:
                    status = _send(
                        hook.url,
                        decrypt_secret(settings, hook.secret_encrypted),
                        delivery,
                        settings.webhook_timeout_seconds,
                    )
                    if not 200 <= status < 300:
                        error = f"receiver answered HTTP {status}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
            values: dict[str, Any] = {"last_status": status, "last_error": error}
            if error is None:
                values.update(state="delivered", delivered_at=utcnow())
                delivered += 1
            elif attempt >= settings.webhook_max_attempts or hook is None or not hook.active:
                values.update(state="failed")
                log.warning("webhook delivery %s gave up after %d: %s", delivery_id, attempt, error)
            else:
                wait = backoff(settings, attempt)
                values.update(next_attempt_at=utcnow() + timedelta(seconds=wait))
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == attempt)
                .values(**values)
            )
            session.commit()
    return delivered
