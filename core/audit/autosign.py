"""Checkpoints the service signs by itself, on a schedule (the sweeper's tick).

Without them, events after the last hand-signed checkpoint are protected by the hash
chain alone, and cutting the newest events off the log goes unnoticed. Each run verifies
the whole log first and signs nothing over a log that does not verify: it logs why and
skips, and the outcome is kept for ``GET /health`` (``audit``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.audit.events import at_iso
from core.audit.log import LogDoesNotVerify, checkpoint_verified, latest_checkpoint, log_size
from core.settings import Settings
from core.signing import load_signer, trusted_public_keys
from models import AuditCheckpoint
from models.base import utcnow

log = logging.getLogger("expunge.audit")

# Another key than the appenders' lock: signers in several processes skip, not queue.
SIGNER_LOCK_KEY = int.from_bytes(b"expsignr", "big") & 0x7FFF_FFFF_FFFF_FFFF


@dataclass
class SignerStatus:
    """What this process's automatic signer last did."""

    ok: bool | None = None  # None: not run yet
    at: str | None = None
    detail: str = "the automatic checkpoint signer has not run in this process yet"
    tree_size: int | None = None
    first_bad_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_status = SignerStatus()
_status_lock = threading.Lock()


def status() -> SignerStatus:
    with _status_lock:
        return SignerStatus(**asdict(_status))


def _set_status(**values: Any) -> None:
    global _status
    with _status_lock:
        _status = SignerStatus(at=at_iso(utcnow()), **values)


def _another_signer_busy(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return False
    return not session.scalar(select(func.pg_try_advisory_xact_lock(SIGNER_LOCK_KEY)))


def sign_now(factory: sessionmaker[Session], settings: Settings) -> AuditCheckpoint | None:
    """Verify the log and sign its head if it grew since the latest checkpoint.

    Returns the new checkpoint, or None when there was nothing new, another process was
    signing, or the log does not verify (then logged and recorded, never raised).
    """
    with factory() as session:
        if _another_signer_busy(session):
            return None
        size = log_size(session)
        latest = latest_checkpoint(session)
        if size == 0 or (latest is not None and latest.tree_size >= size):
            if status().ok is not False:  # a refusal stays reported until a signing succeeds
                _set_status(ok=True, detail="nothing new to sign", tree_size=size)
            return None
        try:
            cp = checkpoint_verified(session, load_signer(settings), trusted_public_keys(settings))
        except LogDoesNotVerify as exc:
            session.rollback()
            log.error("audit: %s", exc.message)
            _set_status(
                ok=False,
                detail=exc.message,
                tree_size=exc.report.size,
                first_bad_seq=exc.report.first_bad_seq,
            )
            return None
        session.commit()
        _set_status(
            ok=True, detail=f"signed the first {cp.tree_size} events", tree_size=cp.tree_size
        )
        return cp


def sign_quietly(factory: sessionmaker[Session], settings: Settings) -> None:
    """``sign_now`` for a background loop: any other failure is logged, not raised."""
    try:
        sign_now(factory, settings)
    except Exception as exc:  # the database may be restarting: the next tick retries
        log.warning("automatic audit checkpoint failed: %s", exc)
        _set_status(ok=False, detail=f"could not sign: {type(exc).__name__}: {exc}"[:300])
