"""``record``: events checked at once, written by the caller's commit (in its transaction,
last), gone with a rollback; concurrent recorders never fork the chain, and taking the
audit lock last means a row lock held across a recorded change cannot deadlock."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text, update

from core.audit import log
from core.signing import Signer
from models import ApiKey, AuditEvent
from tests.core.audit.conftest import AuditDB

SIGNER = Signer.generate()


def _actions(db: AuditDB) -> list[tuple[int, str]]:
    with db.sessions() as session:
        return [
            (e.seq, e.action) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]


def test_recorded_events_are_written_by_the_commit_in_order(audit_db: AuditDB) -> None:
    with audit_db.sessions() as session:
        log.record(session, "key_a", "model.created", "model", "mdl_1", {"family": "x"})
        log.record(session, "key_a", "job.queued", "job", "job_1")
        log.append(session, "system", "deletion_request.received", "deletion_request", "dr_1")
        assert len(log.pending(session)) == 2
        assert _actions(audit_db) == []  # nothing visible before the commit
        session.commit()
        assert log.pending(session) == []
    assert _actions(audit_db) == [
        (0, "deletion_request.received"),
        (1, "model.created"),
        (2, "job.queued"),
    ]
    with audit_db.sessions() as session:
        log.record(session, "key_a", "job.cancelled", "job", "job_1")
        session.rollback()
        session.commit()
    with audit_db.sessions() as session:
        log.record(session, "key_a", "job.cancelled", "job", "job_2")
        with session.begin_nested():  # a savepoint's commit does not write them
            log.record(session, "key_a", "job.cancelled", "job", "job_3")
        assert len(log.pending(session)) == 2
        session.close()  # closed without a commit: dropped
    assert len(_actions(audit_db)) == 3
    with audit_db.sessions() as session:
        log.write_pending(session)  # nothing held: a no-op
        session.commit()
        assert log.verify_chain(session).ok


def test_record_checks_the_event_where_it_is_made(audit_db: AuditDB) -> None:
    with audit_db.sessions() as session:
        with pytest.raises(ValueError, match="subject_id"):
            log.record(session, "key_a", "x.y", "x", "1", {"subject_id": "jane"})
        with pytest.raises(ValueError, match="action"):
            log.record(session, "key_a", "", "x", "1")
        assert log.pending(session) == []


def test_concurrent_recorders_and_appenders_never_fork_the_chain(audit_db: AuditDB) -> None:
    errors: list[BaseException] = []

    def worker(name: str, direct: bool) -> None:
        try:
            for i in range(10):
                with audit_db.sessions.begin() as session:
                    write = log.append if direct else log.record
                    write(session, name, "job.running", "job", f"{name}_{i}")
                    log.record(session, name, "job.succeeded", "job", f"{name}_{i}")
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{t}", t % 2 == 0)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with audit_db.sessions() as session:
        report = log.verify_chain(session)
        # Each transaction's two events are adjacent: the lock is held to its commit.
        rows = session.execute(select(AuditEvent.entity_id).order_by(AuditEvent.seq)).all()
    assert report.ok and report.size == 80, report
    pairs = [rows[i][0] for i in range(0, 80, 2)]
    assert pairs == [rows[i + 1][0] for i in range(0, 80, 2)]


def test_a_row_lock_held_across_a_recorded_change_does_not_deadlock(audit_db: AuditDB) -> None:
    """A (row lock, then an event) and B (an event, then the same row): with the audit
    lock taken at commit, B simply waits for A. Taken at the event (``append``), each
    would hold what the other waits for."""
    with audit_db.sessions.begin() as session:
        session.add(ApiKey(id="key_row", name="n", role="viewer", prefix="p", secret_hash="0"))
    a_has_row, b_has_event = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def a() -> None:
        try:
            with audit_db.sessions.begin() as session:
                session.execute(update(ApiKey).where(ApiKey.id == "key_row").values(name="a"))
                a_has_row.set()
                b_has_event.wait(10)
                threading.Event().wait(0.3)  # B is now blocked on the row
                log.record(session, "key_a", "api_key.updated", "api_key", "key_row")
                session.execute(text("SELECT 1"))
        except BaseException as exc:
            errors.append(exc)

    def b() -> None:
        try:
            a_has_row.wait(10)
            with audit_db.sessions.begin() as session:
                log.record(session, "key_b", "api_key.updated", "api_key", "key_row")
                b_has_event.set()
                session.execute(update(ApiKey).where(ApiKey.id == "key_row").values(name="b"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert [actor for _, actor in _actors(audit_db)] == ["key_a", "key_b"]
    with audit_db.sessions() as session:
        log.checkpoint(session, SIGNER)
        session.commit()
        assert log.verify_chain(session, [SIGNER.public_key_pem()]).ok


def _actors(db: AuditDB) -> list[tuple[int, str]]:
    with db.sessions() as session:
        return [
            (e.seq, e.actor) for e in session.scalars(select(AuditEvent).order_by(AuditEvent.seq))
        ]
