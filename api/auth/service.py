"""API keys: ``exp_<prefix>_<secret>``; only sha256(secret) is stored.

The secret has 256 bits of entropy, so a fast hash is enough (no password stretching);
the prefix finds the row and the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.log import record
from core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from models import ApiKey
from models.base import new_id, utcnow
from models.keys import ROLES


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_secret() -> str:
    return f"exp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def split_key(raw: str) -> tuple[str, str]:
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != "exp" or not parts[1] or not parts[2]:
        raise Unauthorized("malformed API key: expected 'exp_<prefix>_<secret>'")
    return parts[1], parts[2]


def create_key(
    session: Session, name: str, role: str, created_by: str | None, raw: str | None = None
) -> tuple[ApiKey, str]:
    if role not in ROLES:
        raise Unprocessable(
            f"unknown role {role!r}; choose one of {', '.join(ROLES)}", field="role"
        )
    raw = raw or generate_secret()
    prefix, secret = split_key(raw)
    if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)):
        raise Conflict("an API key with this prefix already exists")
    key = ApiKey(
        id=new_id("key"),
        name=name,
        role=role,
        prefix=prefix,
        secret_hash=_hash(secret),
        created_by=created_by,
    )
    session.add(key)
    session.flush()
    # The name is the operator's label for the key: it may name a person, so it stays out.
    record(session, created_by or "system", "api_key.created", "api_key", key.id, {"role": role})
    return key, raw


def authenticate(session: Session, raw: str) -> ApiKey:
    prefix, secret = split_key(raw)
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    # Compare even when the row is missing so timing does not reveal which prefixes exist.
    expected = key.secret_hash if key else _hash("no-such-key")
    if not hmac.compare_digest(expected, _hash(secret)) or key is None:
        raise Unauthorized("invalid API key")
    if key.revoked_at is not None:
        raise Unauthorized("this API key has been revoked")
    return key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, key_id: str, actor: str = "system") -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} not found")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record(session, actor, "api_key.revoked", "api_key", key.id, {"role": key.role})
    return key


def ensure_bootstrap_key(session: Session, raw: str) -> ApiKey:
    """Create (or un-revoke) the admin key named by EXPUNGE_BOOTSTRAP_ADMIN_KEY."""
    prefix, secret = split_key(raw)
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        key, _ = create_key(session, "bootstrap-admin", "admin", None, raw=raw)
    elif not hmac.compare_digest(key.secret_hash, _hash(secret)):
        raise Conflict("EXPUNGE_BOOTSTRAP_ADMIN_KEY clashes with an existing key's prefix")
    return key
