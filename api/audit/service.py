"""The audit domain's service: the API's view of ``core.audit`` (signer from settings)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.audit import log
from core.audit.verify import VerifyReport
from core.errors import ServiceUnavailable
from core.settings import Settings
from core.signing import Signer, SigningKeyError, load_signer, trusted_public_keys
from models import AuditCheckpoint


def signer(settings: Settings) -> Signer:
    try:
        return load_signer(settings)
    except SigningKeyError as exc:
        raise ServiceUnavailable(f"the signing key is not usable: {exc}") from exc


def verify(session: Session, settings: Settings) -> VerifyReport:
    """Everything recomputed; every checkpoint must be signed by this deployment's key (or
    one it used before a rotation, ``EXPUNGE_SIGNING_PREVIOUS_KEYS``)."""
    try:
        keys = trusted_public_keys(settings)
    except SigningKeyError as exc:
        raise ServiceUnavailable(f"a signing key is not usable: {exc}") from exc
    return log.verify_chain(session, keys)


def create_checkpoint(session: Session, settings: Settings) -> tuple[AuditCheckpoint, bool]:
    """(checkpoint, created): the current head is signed unless the latest still is.

    Only over a log that verifies: otherwise ``LogDoesNotVerify`` (409, naming the first
    bad position), so the deployment's signature never vouches for an edited log.
    """
    latest = log.latest_checkpoint(session)
    try:
        keys = trusted_public_keys(settings)
    except SigningKeyError as exc:
        raise ServiceUnavailable(f"a signing key is not usable: {exc}") from exc
    cp = log.checkpoint_verified(session, signer(settings), keys)
    return cp, latest is None or cp.id != latest.id
