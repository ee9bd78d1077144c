"""The audit log in the database: append, checkpoint, prove, verify, export.

Services call ``append`` inside their own transaction and never commit here: the event
is written if and only if the state change it records is. Appends are serialised (a
transaction-scoped advisory lock on Postgres, the database write lock on SQLite), so
``seq`` is gapless and the chain never forks, however many API and worker processes
append at once. The lock is held until the caller's transaction ends, so call ``append``
late in a transaction, not before slow work.

Most services call ``record`` instead: it checks the event at once but writes it just
before the caller's transaction commits (a ``before_commit`` hook), so the audit lock is
the last lock a transaction takes and is held only for the commit itself. A transaction
that took the audit lock early and then waited on a row lock another appender holds
would deadlock with it; taken last, it cannot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, SessionTransaction

from core.audit.events import (
    GENESIS_HASH,
    at_iso,
    canonical_payload,
    event_hash,
    event_preimage,
)
from core.audit.merkle import LEAF_PREFIX, consistency_proof, inclusion_proof, root
from core.audit.verify import (
    EXPORT_FORMAT,
    ChainVerifier,
    CheckpointRecord,
    EventRow,
    VerifyReport,
    checkpoint_document,
    event_line,
    run_verifier,
    verify_export,
)
from core.errors import Conflict, NotFound, Unprocessable
from core.signing import CHECKPOINT_CONTEXT, Signer, signed_message
from models import AuditCheckpoint, AuditEvent

# pg_advisory_xact_lock key: "expaudit" as a big-endian int64, so it will not collide
# with a lock some other code takes by accident.
ADVISORY_LOCK_KEY = int.from_bytes(b"expaudit", "big") & 0x7FFF_FFFF_FFFF_FFFF
CHUNK = 20_000
LIMITS = {"actor": 64, "action": 80, "entity_type": 40, "entity_id": 100}
# Payload keys that would put a subject id in clear into the log.
FORBIDDEN_PAYLOAD_KEYS = frozenset({"subject_id", "subject_ids"})

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "LogDoesNotVerify",
    "VerifyReport",
    "append",
    "checkpoint",
    "checkpoint_verified",
    "consistency",
    "export",
    "inclusion",
    "leaf_hashes",
    "list_checkpoints",
    "log_size",
    "record",
    "verify_chain",
    "write_pending",
    "verify_export",
]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _lock_tail(session: Session) -> None:
    """Serialise appenders until this transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(ADVISORY_LOCK_KEY)))
    else:
        # SQLite: a write statement takes the database write lock (waiting out the busy
        # timeout) and keeps it to the end of the transaction. This one touches no row,
        # so the append-only trigger does not fire.
        session.execute(text("UPDATE audit_events SET seq = seq WHERE 0 = 1"))


def _check_payload_keys(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in FORBIDDEN_PAYLOAD_KEYS:
                raise ValueError(
                    f"audit payloads must not hold {key!r} in clear; store "
                    "commit_subject(subject_id, salt) values (e.g. as 'subject_commitments')"
                )
            _check_payload_keys(item)
    elif isinstance(value, list):
        for item in value:
            _check_payload_keys(item)


def _checked(
    actor: str, action: str, entity_type: str, entity_id: str, payload: dict[str, Any] | None
) -> str:
    """The canonical payload text, once every field is known to fit the log."""
    fields = {"actor": actor, "action": action, "entity_type": entity_type, "entity_id": entity_id}
    for name, value in fields.items():
        if not isinstance(value, str) or not value or len(value) > LIMITS[name]:
            raise ValueError(f"audit {name} must be a non-empty string of <= {LIMITS[name]} chars")
        if "\x00" in value:  # PostgreSQL text cannot hold NUL
            raise ValueError(f"audit {name} must not contain NUL characters")
    _check_payload_keys(payload)
    return canonical_payload(payload)


def append(
    session: Session,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    payload: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (flushed, not committed)."""
    payload_text = _checked(actor, action, entity_type, entity_id, payload)
    return _write(session, actor, action, entity_type, entity_id, payload_text)


def _write(
    session: Session, actor: str, action: str, entity_type: str, entity_id: str, payload_text: str
) -> AuditEvent:
    _lock_tail(session)
    tail = session.execute(
        select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev = (tail.seq + 1, tail.hash) if tail else (0, GENESIS_HASH)
    at = _utcnow()
    event = AuditEvent(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        payload_json=payload_text,
        prev_hash=prev,
        hash=event_hash(seq, at_iso(at), actor, action, entity_type, entity_id, payload_text, prev),
    )
    session.add(event)
    session.flush()
    return event


_PENDING = "audit_pending"


def record(
    session: Session,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    payload: dict[str, Any] | None = None,
) -> None:
    """Record one event when the caller's transaction commits, in that transaction.

    Checked now (a bad event fails where it is made), written by the ``before_commit``
    hook below, in the order recorded; gone with the transaction if it rolls back. Use
    ``append`` instead where the event's position is needed before the commit.
    """
    payload_text = _checked(actor, action, entity_type, entity_id, payload)
    # Inside a transaction, so its rollback (or close) is what drops the event.
    session.connection()
    session.info.setdefault(_PENDING, []).append(
        (actor, action, entity_type, entity_id, payload_text)
    )


def pending(session: Session) -> list[tuple[str, str, str, str, str]]:
    """Events ``record`` holds for this session's commit (for tests and diagnostics)."""
    return list(session.info.get(_PENDING, ()))


def write_pending(session: Session) -> None:
    """Write the events ``record`` holds now, before an ``append`` that must follow them
    (a certificate's event comes after the steps it certifies)."""
    queued = session.info.pop(_PENDING, None)
    for item in queued or ():
        _write(session, *item)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the outer commit writes them
        return
    write_pending(session)


@event.listens_for(Session, "after_transaction_end")
def _drop_pending(session: Session, transaction: SessionTransaction) -> None:
    # The outermost transaction ended without its commit writing them: a rollback.
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_PENDING, None)


def log_size(session: Session) -> int:
    """Events visible to this transaction. Committed events always form a gapless prefix
    (appends are serialised and commit before the lock is released)."""
    last = session.scalar(select(func.max(AuditEvent.seq)))
    return 0 if last is None else int(last) + 1


def leaf_hashes(session: Session, tree_size: int) -> list[bytes]:
    """The Merkle leaf hashes ``H(0x00 ‖ event hash)`` of events ``[0, tree_size)``."""
    out: list[bytes] = []
    append = out.append
    fromhex = bytes.fromhex
    sha = hashlib.sha256
    sql = f"SELECT seq, hash FROM audit_events WHERE seq < {int(tree_size)} ORDER BY seq"
    for seq, h in _stream(session, sql):
        if seq != len(out):
            raise Unprocessable(
                f"the audit log has a gap at position {len(out)}; run /audit/verify"
            )
        append(sha(LEAF_PREFIX + fromhex(h)).digest())
    if len(out) != tree_size:
        raise Unprocessable(f"the audit log has {len(out)} events, fewer than {tree_size}")
    return out


# --------------------------------------------------------------------------- checkpoints


def record_of(cp: AuditCheckpoint) -> CheckpointRecord:
    return CheckpointRecord(
        tree_size=cp.tree_size,
        root_hash=cp.root_hash,
        signature=cp.signature,
        key_id=cp.key_id,
        at=at_iso(cp.at),
        id=cp.id,
    )


def list_checkpoints(session: Session, *, limit: int | None = None) -> list[AuditCheckpoint]:
    """Newest first."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    rows = list_checkpoints(session, limit=1)
    return rows[0] if rows else None


def checkpoint(session: Session, signer: Signer, size: int | None = None) -> AuditCheckpoint:
    """Sign the current tree head (size, RFC 6962 root) unless the latest one still is;
    ``size``: sign the first ``size`` events instead (those a verification just read)."""
    size = log_size(session) if size is None else size
    latest = latest_checkpoint(session)
    if latest is not None and latest.tree_size == size and latest.key_id == signer.key_id:
        return latest
    root_hash = root(leaf_hashes(session, size)).hex()
    at = _utcnow()
    document = checkpoint_document(size, root_hash, at_iso(at), signer.key_id)
    signature = signer.sign(signed_message(CHECKPOINT_CONTEXT, document))
    cp = AuditCheckpoint(
        tree_size=size,
        root_hash=root_hash,
        signature=base64.b64encode(signature).decode(),
        key_id=signer.key_id,
        at=at,
    )
    session.add(cp)
    session.flush()
    return cp


class LogDoesNotVerify(Conflict):
    """The log fails verification: nothing may be signed over it."""

    def __init__(self, report: VerifyReport) -> None:
        where = (
            f"at position {report.first_bad_seq}"
            if report.first_bad_seq is not None
            else "(no single position)"
        )
        super().__init__(
            f"refusing to sign a checkpoint: the audit log does not verify {where}: "
            f"{report.reason}. Investigate with GET /api/v1/audit/verify; see docs/audit.md"
        )
        self.report = report


def checkpoint_verified(
    session: Session, signer: Signer, public_keys: Iterable[str | bytes] = ()
) -> AuditCheckpoint:
    """``checkpoint``, but only over a log that verifies end to end (every hash, link,
    earlier checkpoint root and signature); raises ``LogDoesNotVerify`` otherwise, so a
    signature never vouches for an edited log."""
    keys = list(public_keys) or [signer.public_key_pem()]
    report = verify_chain(session, keys)
    if not report.ok:
        raise LogDoesNotVerify(report)
    return checkpoint(session, signer, report.size)


def checkpoint_at(session: Session, tree_size: int) -> AuditCheckpoint | None:
    return session.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.tree_size == tree_size)
        .order_by(AuditCheckpoint.id.desc())
        .limit(1)
    ).first()


# --------------------------------------------------------------------------- proofs


@dataclass
class InclusionProof:
    seq: int
    tree_size: int
    event_hash: str
    leaf_hash: str
    root_hash: str
    proof: list[str]
    checkpoint: AuditCheckpoint | None


@dataclass
class ConsistencyProof:
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


def _resolve_size(session: Session, tree_size: int | None, name: str) -> int:
    size = log_size(session)
    if tree_size is None:
        return size
    if tree_size < 0 or tree_size > size:
        raise Unprocessable(
            f"{name} must be between 0 and the log size ({size}), got {tree_size}", field=name
        )
    return tree_size


def inclusion(session: Session, seq: int, tree_size: int | None = None) -> InclusionProof:
    """Proof that event ``seq`` is in the tree of ``tree_size`` (default: the whole log)."""
    event = session.get(AuditEvent, seq)
    if event is None:
        raise NotFound(f"no audit event at position {seq}")
    size = _resolve_size(session, tree_size, "tree_size")
    if seq >= size:
        raise Unprocessable(
            f"event {seq} is not in a tree of size {size}; tree_size must be > seq",
            field="tree_size",
        )
    leaves = leaf_hashes(session, size)
    return InclusionProof(
        seq=seq,
        tree_size=size,
        event_hash=event.hash,
        leaf_hash=leaves[seq].hex(),
        root_hash=root(leaves).hex(),
        proof=[h.hex() for h in inclusion_proof(seq, size, leaves)],
        checkpoint=checkpoint_at(session, size),
    )


def consistency(session: Session, first: int, second: int | None = None) -> ConsistencyProof:
    """Proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""
    second = _resolve_size(session, second, "second")
    if first < 0 or first > second:
        raise Unprocessable(
            f"first must be between 0 and second ({second}), got {first}", field="first"
        )
    leaves = leaf_hashes(session, second)
    return ConsistencyProof(
        first=first,
        second=second,
        first_root=root(leaves[:first]).hex(),
        second_root=root(leaves).hex(),
        proof=[h.hex() for h in consistency_proof(first, second, leaves)],
    )


# --------------------------------------------------------------------------- verify, export

_EVENT_COLUMNS = (
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.entity_type,
    AuditEvent.entity_id,
    AuditEvent.payload_json,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def _event_rows(session: Session, upto: int, chunk: int = CHUNK) -> Iterator[Sequence[Any]]:
    """Events with seq < upto in order, a chunk at a time (keyset pagination: no cursor
    held open between chunks, and the same code on SQLite and Postgres)."""
    after = -1
    while True:
        rows = session.execute(
            select(*_EVENT_COLUMNS)
            .where(AuditEvent.seq > after, AuditEvent.seq < upto)
            .order_by(AuditEvent.seq)
            .limit(chunk)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def _upper_bound(session: Session) -> int:
    last = session.scalar(select(func.max(AuditEvent.seq)))
    return 0 if last is None else int(last) + 1


# ``at`` as the exact string ``at_iso`` makes, formatted by the database: on Postgres
# that work happens in the server process, beside this one, which is most of what keeps
# a million-event verification under ten seconds on two cores. The tests verify chains
# written through the ORM on both backends, so a drift between the two forms shows.
_AT_TEXT = {
    "postgresql": "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
    "sqlite": "replace(at, ' ', 'T') || '+00:00'",
}


def _stream(session: Session, sql: str) -> Iterator[Sequence[Any]]:
    """Rows of ``sql`` straight from the driver's cursor, streamed.

    Verification and proofs read every row of the log once; SQLAlchemy's result layer
    would double the cost per row. On Postgres a named (server-side) cursor streams, so
    a million rows never sit in memory at once; sqlite3 cursors stream by nature.
    """
    connection = session.connection()
    raw = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        cursor = raw.cursor(name=f"audit_{secrets.token_hex(6)}")  # type: ignore[union-attr]
        cursor.itersize = CHUNK
    else:
        cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(CHUNK):
            yield from rows
    finally:
        cursor.close()


def _fast_event_rows(session: Session, upto: int) -> Iterator[Sequence[Any]]:
    """Events with seq < upto, in order, ``at`` already as its ISO string."""
    at_text = _AT_TEXT.get(session.get_bind().dialect.name)
    if at_text is None:  # another database: the portable path
        yield from _event_rows(session, upto)
        return
    yield from _stream(
        session,
        f"SELECT seq, {at_text}, actor, action, entity_type, entity_id, payload, prev_hash, "
        f"hash FROM audit_events WHERE seq < {int(upto)} ORDER BY seq",
    )


def verify_chain(
    session: Session,
    public_keys: Iterable[str | bytes] = (),
    trusted_checkpoints: Iterable[CheckpointRecord] = (),
) -> VerifyReport:
    """Recompute every event hash, every link and every checkpoint root and signature.

    Every checkpoint must be signed by one of ``public_keys``; with no keys given,
    checkpoint roots are still checked and the checkpoints counted as unverified.
    ``trusted_checkpoints``: checkpoints kept outside the database (e.g. a certificate's
    anchor), held against the log like its own, so deleting rows of both tables shows.
    """
    public_keys = list(public_keys)
    checkpoints = [record_of(cp) for cp in session.scalars(select(AuditCheckpoint))]
    checkpoints += list(trusted_checkpoints)
    # Read after the checkpoints, so every checkpoint's events are within the bound.
    upto = _upper_bound(session)
    rows = cast(Iterator[EventRow], _fast_event_rows(session, upto))
    verifier = ChainVerifier(public_keys, require_trusted_key=bool(public_keys))
    return run_verifier(verifier, rows, checkpoints)


def _json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_strict_json = json.JSONDecoder(parse_constant=_refuse_constant).decode


def _event_line(row: Sequence[Any]) -> str:
    """One event: its canonical document exactly as hashed, then the hash.

    A payload whose stored text is not valid JSON (only possible after a hand edit)
    cannot be spliced into a JSON line; it goes out as the string ``payload_raw``, which
    the offline verifier hashes the same way the server does.
    """
    seq, at, actor, action, entity_type, entity_id, payload_text, prev_hash, h = row
    at_text = at if isinstance(at, str) else at_iso(at)
    try:
        _strict_json(payload_text)
    except ValueError:
        event = {
            "seq": seq,
            "at": at_text,
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "payload_raw": payload_text,
            "prev_hash": prev_hash,
        }
        return _json_line({"event": event, "hash": h})
    preimage = event_preimage(
        seq, at_text, actor, action, entity_type, entity_id, payload_text, prev_hash
    )
    return event_line(preimage, h)


def _checkpoint_line(cp: CheckpointRecord) -> str:
    return _json_line(
        {
            "checkpoint": {
                "id": cp.id,
                "tree_size": cp.tree_size,
                "root_hash": cp.root_hash,
                "signature": cp.signature,
                "key_id": cp.key_id,
                "at": cp.at,
            }
        }
    )


def export(session: Session) -> Iterator[str]:
    """The log as JSON lines: a header, every event with each checkpoint right after the
    event that completes its tree, and an end line with the counts.

    A consistent snapshot without a long transaction: events are append-only, so fixing
    the size first and reading only below it is enough.
    """
    checkpoints = sorted(
        (record_of(cp) for cp in session.scalars(select(AuditCheckpoint))),
        key=lambda c: (c.tree_size, c.id or 0),
    )
    upto = _upper_bound(session)
    yield _json_line(
        {
            "header": {
                "format": EXPORT_FORMAT,
                "exported_at": at_iso(_utcnow()),
                "events": upto,
                "checkpoints": len(checkpoints),
                "event_hash": "sha256 of the event object's canonical JSON, as in the line",
                "merkle_leaf": "sha256(0x00 || bytes.fromhex(hash)), RFC 6962",
            }
        }
    )
    i = 0
    while i < len(checkpoints) and checkpoints[i].tree_size == 0:
        yield _checkpoint_line(checkpoints[i])
        i += 1
    count = 0
    for row in _fast_event_rows(session, upto):
        yield _event_line(row)
        count += 1
        while i < len(checkpoints) and checkpoints[i].tree_size <= row[0] + 1:
            yield _checkpoint_line(checkpoints[i])
            i += 1
    # Checkpoints beyond the last event (only after a deletion) still go out: they are
    # the evidence that events are missing.
    for cp in checkpoints[i:]:
        yield _checkpoint_line(cp)
    yield _json_line({"end": {"events": count, "checkpoints": len(checkpoints)}})
