"""The audit log on SQLite and PostgreSQL: chain, append-only triggers, concurrency,
checkpoints, proofs, and tampering found at the exact position."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from core.audit import log
from core.audit.events import at_iso, event_document
from core.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from core.errors import NotFound, Unprocessable
from core.signing import Signer, canonical_json
from models import AuditCheckpoint, AuditEvent
from tests.core.audit.conftest import AuditDB
from tests.core.audit.tamper import raw_sql

SIGNER = Signer.generate()
PUBLIC = SIGNER.public_key_pem()


def fill(db: AuditDB, n: int, start: int = 0) -> None:
    with db.sessions.begin() as session:
        for i in range(start, start + n):
            log.append(
                session, "key_test", "job.created", "job", f"job_{i}", {"i": i, "note": "é✓"}
            )


def verify(db: AuditDB) -> log.VerifyReport:
    with db.sessions() as session:
        return log.verify_chain(session, [PUBLIC])


def test_append_chains_events_and_hashes_the_canonical_document(audit_db: AuditDB) -> None:
    fill(audit_db, 5)
    with audit_db.sessions() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    assert events[0].prev_hash == "0" * 64
    for prev, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == prev.hash
    for event in events:
        # The definition: sha256 over the canonical JSON of the whole event document.
        document = event_document(
            event.seq,
            at_iso(event.at),
            event.actor,
            event.action,
            event.entity_type,
            event.entity_id,
            event.payload,
            event.prev_hash,
        )
        assert event.hash == hashlib.sha256(canonical_json(document)).hexdigest()
    assert events[3].payload == {"i": 3, "note": "é✓"}
    report = verify(audit_db)
    assert report.ok and report.size == 5 and report.first_bad_seq is None, report


def test_append_never_commits_and_a_rollback_leaves_no_gap(audit_db: AuditDB) -> None:
    fill(audit_db, 2)
    with audit_db.sessions() as session:
        event = log.append(session, "system", "job.created", "job", "job_x")
        assert event.seq == 2
        session.rollback()
    fill(audit_db, 1)
    with audit_db.sessions() as session:
        assert session.scalars(select(AuditEvent.entity_id).where(AuditEvent.seq == 2)).one() == (
            "job_0"
        )
    assert verify(audit_db).ok


def test_append_refuses_subject_ids_in_clear_and_oversized_fields(audit_db: AuditDB) -> None:
    with audit_db.sessions() as session:
        with pytest.raises(ValueError, match="subject_ids"):
            log.append(session, "k", "a.b", "t", "i", {"scope": {"subject_ids": ["alice"]}})
        with pytest.raises(ValueError, match="actor"):
            log.append(session, "k" * 65, "a.b", "t", "i")
        with pytest.raises(ValueError, match="NaN"):
            log.append(session, "k", "a.b", "t", "i", {"x": float("nan")})


@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints"])
def test_the_database_refuses_update_and_delete(audit_db: AuditDB, table: str) -> None:
    fill(audit_db, 3)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    column = "actor" if table == "audit_events" else "key_id"
    statements = [f"UPDATE {table} SET {column} = 'x'", f"DELETE FROM {table}"]
    if audit_db.backend == "postgres":
        statements.append(f"TRUNCATE {table}")
    for statement in statements:
        with audit_db.engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
    assert verify(audit_db).ok


def test_concurrent_appends_never_fork_the_chain(audit_db: AuditDB) -> None:
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            for i in range(15):
                with audit_db.sessions.begin() as session:
                    log.append(session, name, "job.progress", "job", f"{name}_{i}")
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{t}",)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = verify(audit_db)
    assert report.ok and report.size == 60, report


def test_checkpoints_sign_the_rfc6962_root(audit_db: AuditDB) -> None:
    with audit_db.sessions.begin() as session:
        empty = log.checkpoint(session, SIGNER)
    assert empty.tree_size == 0
    fill(audit_db, 7)
    with audit_db.sessions.begin() as session:
        cp = log.checkpoint(session, SIGNER)
        again = log.checkpoint(session, SIGNER)  # nothing new: the same signed head
        assert again.id == cp.id
        leaves = log.leaf_hashes(session, 7)
    assert cp.tree_size == 7 and cp.key_id == SIGNER.key_id
    from core.audit.merkle import root

    assert cp.root_hash == root(leaves).hex()
    report = verify(audit_db)
    assert report.ok and report.checkpoints_verified == 2, report
    # Without the public key the server still checks roots, and says what it could not sign-check.
    with audit_db.sessions() as session:
        unkeyed = log.verify_chain(session)
    assert unkeyed.ok and unkeyed.checkpoints_unverified == 2


def test_inclusion_and_consistency_proofs_from_the_database(audit_db: AuditDB) -> None:
    fill(audit_db, 11)
    with audit_db.sessions() as session:
        for seq in (0, 5, 10):
            p = log.inclusion(session, seq, tree_size=11)
            leaf = leaf_hash(bytes.fromhex(p.event_hash))
            assert p.leaf_hash == leaf.hex()
            proof = [bytes.fromhex(h) for h in p.proof]
            assert verify_inclusion(leaf, seq, 11, proof, bytes.fromhex(p.root_hash))
        c = log.consistency(session, 4, 11)
        assert verify_consistency(
            4,
            11,
            bytes.fromhex(c.first_root),
            bytes.fromhex(c.second_root),
            [bytes.fromhex(h) for h in c.proof],
        )
        assert log.consistency(session, 6).second == 11
        with pytest.raises(NotFound):
            log.inclusion(session, 11)
        with pytest.raises(Unprocessable):
            log.inclusion(session, 5, tree_size=5)
        with pytest.raises(Unprocessable):
            log.inclusion(session, 5, tree_size=12)
        with pytest.raises(Unprocessable):
            log.consistency(session, 7, 6)


# --------------------------------------------------------------------------- tampering


def test_an_edited_row_is_reported_at_its_position(audit_db: AuditDB) -> None:
    fill(audit_db, 10)
    raw_sql(audit_db.engine, "UPDATE audit_events SET payload = :p WHERE seq = 6", p='{"i":999}')
    report = verify(audit_db)
    assert not report.ok and report.first_bad_seq == 6, report
    assert "altered" in report.reason


def test_an_edited_timestamp_or_actor_is_reported(audit_db: AuditDB) -> None:
    fill(audit_db, 5)
    raw_sql(audit_db.engine, "UPDATE audit_events SET actor = 'someone_else' WHERE seq = 0")
    assert verify(audit_db).first_bad_seq == 0


def test_a_deleted_row_is_reported_at_its_position(audit_db: AuditDB) -> None:
    fill(audit_db, 10)
    raw_sql(audit_db.engine, "DELETE FROM audit_events WHERE seq = 3")
    report = verify(audit_db)
    assert not report.ok and report.first_bad_seq == 3 and "missing" in report.reason, report


def test_a_rehashed_row_breaks_the_link_to_the_next(audit_db: AuditDB) -> None:
    fill(audit_db, 6)
    with audit_db.sessions() as session:
        e = session.get(AuditEvent, 2)
        assert e is not None
        forged = event_document(
            e.seq,
            at_iso(e.at),
            e.actor,
            e.action,
            e.entity_type,
            e.entity_id,
            {"i": -1},
            e.prev_hash,
        )
    new_hash = hashlib.sha256(canonical_json(forged)).hexdigest()
    raw_sql(
        audit_db.engine,
        "UPDATE audit_events SET payload = :p, hash = :h WHERE seq = 2",
        p='{"i":-1}',
        h=new_hash,
    )
    report = verify(audit_db)
    assert not report.ok and report.first_bad_seq == 2 and "link" in report.reason, report


def _rewrite_suffix(db: AuditDB, start: int) -> None:
    """Rewrite every event from ``start`` on with recomputed hashes: the chain is intact."""
    with db.sessions() as session:
        events = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.seq >= start - 1).order_by(AuditEvent.seq)
            )
        )
    prev = events[0].hash
    updates = []
    for e in events[1:]:
        doc = event_document(
            e.seq,
            at_iso(e.at),
            e.actor,
            e.action,
            e.entity_type,
            e.entity_id,
            {"rewritten": True},
            prev,
        )
        h = hashlib.sha256(canonical_json(doc)).hexdigest()
        updates.append((e.seq, prev, h))
        prev = h
    raw_sql(
        db.engine,
        *[
            f"UPDATE audit_events SET payload = :p, prev_hash = '{p}', hash = '{h}' WHERE seq = {s}"
            for s, p, h in updates
        ],
        p='{"rewritten":true}',
    )


def test_a_consistent_rewrite_is_caught_by_the_signed_checkpoints(audit_db: AuditDB) -> None:
    fill(audit_db, 4)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    fill(audit_db, 6, start=4)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    _rewrite_suffix(audit_db, 5)
    report = verify(audit_db)
    # The chain alone is intact; the size-10 checkpoint is not, the size-4 one still is.
    assert not report.ok and report.first_bad_seq == 4 and "rewritten" in report.reason, report


def test_deleting_the_newest_events_is_caught_by_a_checkpoint(audit_db: AuditDB) -> None:
    fill(audit_db, 8)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    raw_sql(audit_db.engine, "DELETE FROM audit_events WHERE seq >= 6")
    report = verify(audit_db)
    assert not report.ok and report.first_bad_seq == 6 and "deleted" in report.reason, report


def test_a_forged_checkpoint_is_caught_by_its_signature(audit_db: AuditDB) -> None:
    fill(audit_db, 3)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    raw_sql(audit_db.engine, "UPDATE audit_checkpoints SET tree_size = 2")
    report = verify(audit_db)
    assert not report.ok and "signature" in report.reason, report


def test_checkpoint_rows_hold_what_was_signed(audit_db: AuditDB) -> None:
    fill(audit_db, 2)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    with audit_db.sessions() as session:
        cp = session.scalars(select(AuditCheckpoint)).one()
        from core.audit.verify import checkpoint_signature_ok

        assert checkpoint_signature_ok(log.record_of(cp), SIGNER.public_key)


def test_relabelled_checkpoints_fail_where_a_key_is_known(audit_db: AuditDB) -> None:
    """Rewriting events and relabelling the checkpoints with an unknown key id (roots
    recomputed) must not pass: every checkpoint needs a valid signature by a known key."""
    fill(audit_db, 4)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, SIGNER)
    _rewrite_suffix(audit_db, 1)
    with audit_db.sessions() as session:
        from core.audit.merkle import root

        new_root = root(log.leaf_hashes(session, 4)).hex()
    raw_sql(
        audit_db.engine,
        "UPDATE audit_checkpoints SET key_id = 'ffffffffffffffff', root_hash = :r",
        r=new_root,
    )
    report = verify(audit_db)
    assert not report.ok and "not among the public keys" in report.reason, report


def test_checkpoints_signed_before_a_key_rotation_still_verify(audit_db: AuditDB, tmp_path) -> None:
    from core.settings import Settings
    from core.signing import load_signer, trusted_public_keys

    old = Signer.generate()
    fill(audit_db, 2)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, old)
    new = Signer.generate()
    settings = Settings(
        env="test",
        home=tmp_path,
        signing_key=new.private_key_pem().decode(),
        signing_previous_keys=old.public_key_pem() + Signer.generate().public_key_pem(),
    )
    assert load_signer(settings).key_id == new.key_id
    keys = trusted_public_keys(settings)
    assert len(keys) == 3
    fill(audit_db, 1, start=2)
    with audit_db.sessions.begin() as session:
        log.checkpoint(session, new)
    with audit_db.sessions() as session:
        assert not log.verify_chain(session, [new.public_key_pem()]).ok
        report = log.verify_chain(session, keys)
    assert report.ok and report.checkpoints_verified == 2 and report.signed_size == 3, report
