"""Exports verify offline with the public key alone, and every kind of tampering with the
file (or with the database before the export) is reported at its position."""

from __future__ import annotations

import json

import pytest

from core.audit import log
from core.audit.anchor import anchor, verify_anchor
from core.audit.verify import CheckpointRecord, verify_export
from core.signing import Signer
from tests.core.audit.conftest import AuditDB
from tests.core.audit.tamper import raw_sql

SIGNER = Signer.generate()
PUBLIC = SIGNER.public_key_pem()


def build(db: AuditDB, sizes: tuple[int, ...] = (3, 4, 5)) -> None:
    """Events in batches, a signed checkpoint after each batch (sizes 3, 7, 12)."""
    seq = 0
    for n in sizes:
        with db.sessions.begin() as session:
            for _ in range(n):
                log.append(session, "key_a", "job.created", "job", f"job_{seq}", {"n": seq})
                seq += 1
            log.checkpoint(session, SIGNER)


def export_lines(db: AuditDB) -> list[str]:
    with db.sessions() as session:
        return list(log.export(session))


def test_an_export_verifies_offline(audit_db: AuditDB) -> None:
    build(audit_db)
    lines = export_lines(audit_db)
    kinds = [next(iter(json.loads(line))) for line in lines]
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert kinds.count("event") == 12 and kinds.count("checkpoint") == 3
    # Each checkpoint comes right after the event that completes its tree.
    assert kinds[4] == "checkpoint" and kinds[9] == "checkpoint"
    report = verify_export(lines, [PUBLIC])
    assert report.ok and report.size == 12 and report.checkpoints_verified == 3, report
    assert report.signed_size == 12
    with audit_db.sessions() as session:
        assert report.root_hash == log.verify_chain(session, [PUBLIC]).root_hash


def test_a_reformatted_export_still_verifies(audit_db: AuditDB) -> None:
    build(audit_db)
    pretty = [
        json.dumps(json.loads(line), indent=None, sort_keys=False) + "\n"
        for line in export_lines(audit_db)
    ]
    reordered = [json.dumps(dict(reversed(json.loads(line).items()))) for line in pretty]
    assert verify_export(reordered, [PUBLIC]).ok


def _edit_event(lines: list[str], seq: int, **changes: object) -> list[str]:
    out = []
    for line in lines:
        obj = json.loads(line)
        if "event" in obj and obj["event"]["seq"] == seq:
            obj["event"].update(changes)
            line = json.dumps(obj) + "\n"
        out.append(line)
    return out


@pytest.mark.parametrize(
    ("mutate", "first_bad", "words"),
    [
        (lambda ls: _edit_event(ls, 5, payload={"n": 500}), 5, "altered"),
        (lambda ls: _edit_event(ls, 0, actor="mallory"), 0, "altered"),
        (lambda ls: [ls[i] for i in range(len(ls)) if i != 3], 2, "missing"),  # event 2 gone
        (lambda ls: ls[:-1], 12, "cut short"),
        (lambda ls: [ls[0], *ls[1:-1][::-1], ls[-1]], 0, "missing"),
        (lambda ls: [line.replace('"n":7', '"n":8') for line in ls], 7, "altered"),
    ],
)
def test_a_tampered_export_fails_at_the_position(
    audit_db: AuditDB, mutate, first_bad: int | None, words: str
) -> None:
    build(audit_db)
    report = verify_export(mutate(export_lines(audit_db)), [PUBLIC])
    assert not report.ok and report.first_bad_seq == first_bad and words in report.reason, report


def test_an_export_is_only_as_trusted_as_the_key_given(audit_db: AuditDB) -> None:
    build(audit_db)
    lines = export_lines(audit_db)
    report = verify_export(lines, [Signer.generate().public_key_pem()])
    assert not report.ok and "not among the public keys" in report.reason
    dropped = [line for line in lines if '"checkpoint"' not in line]
    report = verify_export(dropped, [PUBLIC])
    assert not report.ok and "end line counts" in report.reason


def test_a_kept_checkpoint_proves_nothing_was_cut_or_rewritten(audit_db: AuditDB) -> None:
    build(audit_db)
    with audit_db.sessions() as session:
        kept = log.record_of(log.latest_checkpoint(session))  # type: ignore[arg-type]
    lines = export_lines(audit_db)
    assert verify_export(lines, [PUBLIC], trusted_checkpoints=[kept]).ok
    # An attacker exports from a database cut back to 7 events with its later checkpoints
    # gone too: self-consistent, but not against what the user kept.
    raw_sql(
        audit_db.engine,
        "DELETE FROM audit_events WHERE seq >= 7",
        "DELETE FROM audit_checkpoints WHERE tree_size > 7",
    )
    short = export_lines(audit_db)
    assert verify_export(short, [PUBLIC]).ok
    report = verify_export(short, [PUBLIC], trusted_checkpoints=[kept])
    assert not report.ok and report.first_bad_seq == 7 and "deleted" in report.reason, report
    forged = CheckpointRecord(12, "00" * 32, kept.signature, kept.key_id, kept.at)
    report = verify_export(lines, [PUBLIC], trusted_checkpoints=[forged])
    assert not report.ok and "signature" in report.reason


def test_database_tampering_shows_the_same_offline_as_on_the_server(audit_db: AuditDB) -> None:
    build(audit_db)
    raw_sql(
        audit_db.engine,
        "UPDATE audit_events SET payload = :p WHERE seq = 4",
        "DELETE FROM audit_events WHERE seq >= 10",
        p="{not json",
    )
    with audit_db.sessions() as session:
        server = log.verify_chain(session, [PUBLIC])
    offline = verify_export(export_lines(audit_db), [PUBLIC])
    assert not server.ok and server.first_bad_seq == 4
    assert (offline.ok, offline.first_bad_seq) == (server.ok, server.first_bad_seq), offline


def test_deleted_newest_events_show_in_the_export(audit_db: AuditDB) -> None:
    build(audit_db)
    raw_sql(audit_db.engine, "DELETE FROM audit_events WHERE seq >= 10")
    report = verify_export(export_lines(audit_db), [PUBLIC])
    assert not report.ok and report.first_bad_seq == 10 and "deleted" in report.reason, report


def test_anchors_prove_events_against_a_signed_checkpoint(audit_db: AuditDB) -> None:
    build(audit_db)
    with audit_db.sessions.begin() as session:
        log.append(session, "system", "deletion_request.completed", "deletion_request", "dr_1")
    with audit_db.sessions.begin() as session:
        doc = anchor(session, SIGNER, [0, 5, 12])
    assert doc["checkpoint"]["tree_size"] == 13
    assert verify_anchor(doc, [PUBLIC]) == (True, "3 events proven in the signed log of size 13")
    doc["events"][1]["hash"] = "ab" * 32
    ok, why = verify_anchor(doc, [PUBLIC])
    assert not ok and "event 5" in why
    assert not verify_anchor(doc, [Signer.generate().public_key_pem()])[0]
