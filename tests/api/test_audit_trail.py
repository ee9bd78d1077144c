"""The audit log is complete and anchored: every state change of the demo load and of API
keys is an event; a deletion request ends under a signed checkpoint with a certificate
whose anchor proves its own event and exposes a log cut short; nothing is signed over a
log that does not verify (409 over REST, a logged skip for the automatic signer)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core import demo, migrate
from core.audit import autosign, log
from core.audit.anchor import anchor_checkpoint, check_certificate, verify_certificate_anchor
from core.client import ExpungeClient
from core.db import make_engine
from core.settings import Settings
from models import AuditEvent
from tests.core.audit.tamper import raw_sql
from tests.services import ADMIN_KEY, postgres_database
from tests.support import wait_for

V1 = "/api/v1"


@pytest.fixture
def fresh(prod_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    """An app on an empty database of its own, so every event in its log is accounted for."""
    from api.app import create_app

    with postgres_database() as url:
        settings = prod_settings.model_copy(update={"database_url": url})
        migrate.upgrade(settings)
        app = create_app(settings, run_sweeper=False)
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            yield client, settings
        from core.db import get_engine

        get_engine(settings).dispose()


def _events(client: TestClient) -> list[AuditEvent]:
    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def _key(client: TestClient, name: str, role: str) -> dict:
    created = client.post(f"{V1}/keys", json={"name": name, "role": role})
    assert created.status_code == 201, created.text
    return created.json()


def test_the_demo_load_and_key_changes_are_all_in_the_log(
    fresh, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = fresh
    # The demo's own datasets, a few hundred samples each (the events do not depend on size).
    monkeypatch.setattr(demo, "DEMO_DATASETS", [(n, s, 120) for n, s, _ in demo.DEMO_DATASETS])
    typed = ExpungeClient("http://testserver", ADMIN_KEY)
    typed.http = TestClient(
        client.app, base_url="http://testserver/api/v1", headers=dict(typed.http.headers)
    )
    created = demo.load_demo(typed, train_samples=100)
    assert {"mnist", "fashion-mnist", "orl-faces", "digits", "demo_train_job"} <= set(created)
    keys = [_key(client, f"Jane Doe's {role} key", role) for role in ("compliance", "viewer")]
    keys.append(_key(client, "ci-bot", "engineer"))
    assert client.delete(f"{V1}/keys/{keys[1]['id']}").status_code == 200

    events = _events(client)
    assert Counter(e.action for e in events) == {
        "api_key.created": 4,  # the bootstrap admin key, then three
        "api_key.revoked": 1,
        "dataset.created": 4,
        "dataset_version.created": 4,
        "model.created": 2,
        "model_version.created": 1,  # the uploaded digit-recognizer checkpoint
        "job.queued": 1,  # the demo's training job (no worker here to run it)
    }
    by_action = {e.action: e for e in events}
    assert by_action["api_key.revoked"].entity_id == keys[1]["id"]
    assert by_action["api_key.revoked"].actor != "system"  # the admin key that revoked it
    assert by_action["model_version.created"].payload["source"] == "upload"
    assert by_action["job.queued"].entity_id == created["demo_train_job"]
    # Ids and digests only: no key secret, no key name (it may name a person).
    text = "".join(e.payload_json for e in events)
    for key in keys:
        assert key["key"] not in text and key["name"] not in text
    assert client.get(f"{V1}/audit/verify").json()["ok"] is True


def _compliance_headers(client: TestClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {_key(client, 'approver', 'compliance')['key']}"}


def test_a_deletion_request_ends_anchored_and_a_cut_log_is_detected(
    fresh, tmp_path: Path
) -> None:
    client, settings = fresh
    dataset = client.post(
        f"{V1}/datasets", json={"name": "faces", "source": {"name": "orl_faces", "limit": 40}}
    ).json()
    samples = client.get(f"{V1}/datasets/{dataset['id']}/samples", params={"limit": 40}).json()
    subject = next(s["subject_id"] for s in samples["data"] if s["subject_id"])
    assert client.get(f"{V1}/audit/checkpoints").json()["count"] == 0
    filed = client.post(
        f"{V1}/deletion-requests",
        json={
            "scope": {"subject_ids": [subject]},
            "legal_basis": "gdpr_art17",
            "requester_reference": "t-1",
        },
    )
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    approved = client.post(
        f"{V1}/deletion-requests/{request_id}/approve", headers=_compliance_headers(client)
    )
    assert approved.status_code == 200, approved.text
    from core.deletion.service import advance_all

    app = client.app
    advance_all(app.state.session_factory, app.state.store, settings)  # type: ignore[attr-defined]
    done = client.get(f"{V1}/deletion-requests/{request_id}").json()
    assert done["status"] == "completed", done

    # Signed by the service itself, at the certificate: at least one checkpoint.
    checkpoints = client.get(f"{V1}/audit/checkpoints").json()
    assert checkpoints["count"] >= 1
    document = client.get(f"{V1}/deletion-requests/{request_id}/certificate").json()
    anchor = client.get(f"{V1}/audit/certificates/{request_id}/anchor").json()
    assert anchor["event"]["action"] == "deletion_request.certificate_issued"
    assert anchor["checkpoint"]["tree_size"] == anchor["tree_size"] > anchor["event"]["seq"]
    assert anchor["tree_size"] in [c["tree_size"] for c in checkpoints["data"]]
    pem = client.get(f"{V1}/audit/public-key").text
    results = verify_certificate_anchor(document, anchor, [pem])
    assert results and all(ok for ok, _ in results), results
    # The proof is checked, not trusted: a wrong sibling, or another certificate, fails.
    if anchor["proof"]:
        bad = {**anchor, "proof": ["00" * 32, *anchor["proof"][1:]]}
        assert not all(ok for ok, _ in verify_certificate_anchor(document, bad, [pem]))
    other = {**document, "issued_at": "2000-01-01T00:00:00+00:00"}
    assert not verify_certificate_anchor(other, anchor, [pem])[0][0]
    # The deletion's own changes are in the log with the request's.
    actions = [e.action for e in _events(client)]
    assert "dataset_version.created" in actions[actions.index("deletion_request.approved") :]

    # With an export of the intact log, every offline check passes (CLI included).
    export = tmp_path / "audit.jsonl"
    export.write_bytes(client.get(f"{V1}/audit/export").content)
    cert_file, anchor_file, key_file = (tmp_path / n for n in ("c.json", "a.json", "k.pem"))
    cert_file.write_text(json.dumps(document))
    anchor_file.write_text(json.dumps(anchor))
    key_file.write_text(pem)
    checks = check_certificate(document, [pem], export, anchor)
    assert all(ok for ok, _ in checks), checks
    from click.testing import CliRunner

    from cli import cli

    args = ["certificate", "verify", str(cert_file), "--public-key", str(key_file)]
    result = CliRunner().invoke(cli, [*args, "--anchor", str(anchor_file)], obj={})
    assert result.exit_code == 0, result.output

    # Someone with database access cuts the log from the certificate's event on and
    # removes every checkpoint too: the server's own verification cannot tell...
    seq = anchor["event"]["seq"]
    raw_sql(
        make_engine(settings.database_url),
        f"DELETE FROM audit_events WHERE seq >= {seq}",
        "DELETE FROM audit_checkpoints",
    )
    assert client.get(f"{V1}/audit/verify").json()["ok"] is True
    # ... but the checkpoint the certificate carries can, on the server and offline.
    from core.signing import trusted_public_keys

    kept = anchor_checkpoint(anchor)
    assert kept is not None
    with app.state.session_factory() as session:  # type: ignore[attr-defined]
        report = log.verify_chain(session, trusted_public_keys(settings), [kept])
    assert not report.ok and report.first_bad_seq == seq and "deleted" in report.reason, report
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(client.get(f"{V1}/audit/export").content)
    checks = check_certificate(document, [pem], cut, anchor)
    assert not all(ok for ok, _ in checks), checks
    assert any(not ok and "deleted" in what for ok, what in checks), checks
    result = CliRunner().invoke(
        cli, [*args, "--anchor", str(anchor_file), "--audit-export", str(cut)], obj={}
    )
    assert result.exit_code == 1 and "deleted" in result.output, result.output


def test_nothing_is_signed_over_a_log_that_does_not_verify(fresh) -> None:
    client, settings = fresh
    for role in ("viewer", "engineer", "compliance"):
        _key(client, f"k-{role}", role)
    assert client.post(f"{V1}/audit/checkpoints").status_code == 201
    _key(client, "k-late", "viewer")
    events = _events(client)
    target = events[2].seq
    raw_sql(
        make_engine(settings.database_url),
        f"UPDATE audit_events SET payload = '{{\"role\":\"admin\"}}' WHERE seq = {target}",
    )
    refused = client.post(f"{V1}/audit/checkpoints")
    assert refused.status_code == 409, refused.text
    assert f"at position {target}" in refused.json()["detail"], refused.json()
    assert client.get(f"{V1}/audit/checkpoints").json()["count"] == 1

    # The automatic signer skips, logs, and says so in /health.
    app = client.app
    assert autosign.sign_now(app.state.session_factory, settings) is None  # type: ignore[attr-defined]
    status = autosign.status()
    assert status.ok is False and status.first_bad_seq == target, status
    health = client.get("/api/v1/health").json()
    assert health["audit_signer"]["ok"] is False
    assert f"at position {target}" in health["audit_signer"]["detail"]
    assert client.get(f"{V1}/audit/checkpoints").json()["count"] == 1
    # The refusal stays reported while there is nothing new to sign.
    assert autosign.sign_now(app.state.session_factory, settings) is None  # type: ignore[attr-defined]
    assert autosign.status().ok is False


def test_the_automatic_signer_signs_a_grown_log_once(fresh) -> None:
    client, settings = fresh
    factory = client.app.state.session_factory  # type: ignore[attr-defined]
    _key(client, "k", "viewer")
    first = autosign.sign_now(factory, settings)
    assert first is not None and first.tree_size == len(_events(client))
    assert autosign.sign_now(factory, settings) is None  # nothing new since
    assert autosign.status().ok is True
    _key(client, "k2", "viewer")
    second = autosign.sign_now(factory, settings)
    assert second is not None and second.tree_size == first.tree_size + 1
    assert client.get(f"{V1}/audit/verify").json()["signed_size"] == second.tree_size


def test_webhook_and_deletion_policy_changes_are_in_the_log(fresh) -> None:
    client, _ = fresh
    model = client.post(
        f"{V1}/models",
        json={"name": "m", "architecture": {"name": "mlp", "num_classes": 10, "width": 8}},
    ).json()
    policy = client.put(f"{V1}/models/{model['id']}/deletion-policy", json={"method": "salun"})
    assert policy.status_code == 200, policy.text
    hook = client.post(
        f"{V1}/webhooks",
        json={"url": "https://receiver.test/hook", "events": ["deletion_request.completed"]},
    ).json()
    assert client.post(f"{V1}/webhooks/{hook['id']}/rotate-secret").status_code == 200
    assert client.delete(f"{V1}/webhooks/{hook['id']}").status_code == 204
    trail = [(e.action, e.entity_id) for e in _events(client)[1:]]  # after the bootstrap key
    assert trail == [
        ("model.created", model["id"]),
        ("deletion_policy.updated", model["id"]),
        ("webhook.created", hook["id"]),
        ("webhook.secret_rotated", hook["id"]),
        ("webhook.deleted", hook["id"]),
    ]
    events = _events(client)
    assert events[2].payload["method"] == "salun"
    assert hook["secret"] not in "".join(e.payload_json for e in events)


def _file_nothing_to_delete(client: TestClient) -> str:
    filed = client.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": ["nobody-here"]}, "legal_basis": "ccpa"},
    )
    assert filed.status_code == 201 and filed.json()["status"] == "completed", filed.text
    return filed.json()["id"]


def test_an_anchor_missing_or_refused_is_placed_on_demand(fresh) -> None:
    client, settings = fresh
    app = client.app
    pem = client.get(f"{V1}/audit/public-key").text
    request_id = _file_nothing_to_delete(client)
    document = client.get(f"{V1}/deletion-requests/{request_id}/certificate").json()
    # Anchored after the issuing commit, before the answer came back.
    from models.deletion import DeletionRequest

    with app.state.session_factory() as session:  # type: ignore[attr-defined]
        request = session.get(DeletionRequest, request_id)
        assert request.certificate["anchor"]["checkpoint"] is not None
        # As a certificate issued before anchoring existed (or whose anchoring was cut
        # short by a crash) holds it: the event's position and the certificate's digest.
        anchor = request.certificate["anchor"]
        request.certificate = {
            **request.certificate,
            "anchor": {"audit_seq": anchor["audit_seq"], "sha256": anchor["sha256"]},
        }
        session.commit()
    placed = client.get(f"{V1}/audit/certificates/{request_id}/anchor").json()
    assert placed["checkpoint"] is not None and placed["event"]["seq"] == anchor["audit_seq"]
    assert all(ok for ok, _ in verify_certificate_anchor(document, placed, [pem]))

    # Over a log that does not verify, the certificate is still issued, but unanchored.
    raw_sql(
        make_engine(settings.database_url),
        "UPDATE audit_events SET payload = '{\"role\":\"viewer\"}' WHERE seq = 0",
    )
    second = _file_nothing_to_delete(client)
    refused = client.get(f"{V1}/audit/certificates/{second}/anchor").json()
    assert refused["checkpoint"] is None and "at position 0" in refused["unanchored"]
    document = client.get(f"{V1}/deletion-requests/{second}/certificate").json()
    checks = verify_certificate_anchor(document, refused, [pem])
    assert checks[0][0] and not checks[-1][0] and "no signed checkpoint" in checks[-1][1]
    assert client.get(f"{V1}/audit/certificates/nope/anchor").status_code == 404


def test_the_sweeper_signs_on_its_schedule(fresh) -> None:
    from core.jobs import Sweeper

    client, settings = fresh
    _key(client, "k", "viewer")
    size = len(_events(client))
    sweeper = Sweeper(settings.model_copy(update={"audit_checkpoint_seconds": 0.5}), 0.2)
    sweeper.start()
    try:
        signed = wait_for(
            lambda: client.get(f"{V1}/audit/checkpoints").json()["data"], 20, "a checkpoint"
        )
    finally:
        sweeper.stop()
    assert signed and signed[0]["tree_size"] == size, signed
