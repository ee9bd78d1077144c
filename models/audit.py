"""The audit log: hash-chained events and signed Merkle checkpoints, both append-only.

The database itself refuses UPDATE, DELETE and TRUNCATE on both tables (triggers created by
migration 0002), so the application cannot rewrite history even by mistake; the hashes
and signatures make a rewrite by anyone who bypasses that visible.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime

# SQLite only makes INTEGER (not BIGINT) primary keys the rowid, which is what keeps
# seq lookups and ordered scans cheap there.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One state change. ``seq`` is the 0-based, gapless position in the log.

    ``payload_json`` holds the payload as canonical JSON text (column ``payload``), not
    JSONB: the hash is taken over exactly these bytes, and JSONB would re-encode numbers
    and key order on the way back (1e+16 comes back as 10000000000000000), which would
    make an honest row look tampered with.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_entity", "entity_type", "entity_id"),
        Index("ix_audit_events_action", "action"),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(80))
    entity_type: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[str] = mapped_column(String(100))
    payload_json: Mapped[str] = mapped_column("payload", Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.payload_json)


class AuditCheckpoint(Base):
    """A signed tree head: the RFC 6962 root over the first ``tree_size`` event hashes."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(SeqType, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))  # base64 of the 64-byte signature
    key_id: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
