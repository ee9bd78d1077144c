"""`expunge audit export --local`, `expunge audit verify` and `expunge certificate verify`,
run as a user would, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from core.audit import log
from core.audit.anchor import anchor
from core.settings import get_settings
from core.signing import CERTIFICATE_CONTEXT, Signer, load_signer, sign_document
from tests.core.audit.conftest import AuditDB


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), obj={})
    return result.exit_code, result.output


@pytest.fixture
def local_env(audit_db: AuditDB, monkeypatch: pytest.MonkeyPatch) -> AuditDB:
    """The CLI's server-side commands read the deployment from the environment."""
    monkeypatch.setenv("EXPUNGE_DATABASE_URL", audit_db.settings.database_url)
    monkeypatch.setenv("EXPUNGE_HOME", str(audit_db.settings.home))
    get_settings.cache_clear()
    yield audit_db
    get_settings.cache_clear()


def _steps(db: AuditDB, request_id: str) -> list[dict]:
    with db.sessions.begin() as session:
        events = [
            log.append(session, "key_c", action, "deletion_request", request_id)
            for action in ("deletion_request.received", "deletion_request.approved")
        ]
        return [{"seq": e.seq, "action": e.action, "hash": e.hash} for e in events]


def test_local_export_and_offline_verify(local_env: AuditDB, tmp_path: Path) -> None:
    _steps(local_env, "dr_1")
    out, key = tmp_path / "audit.jsonl", tmp_path / "key.pem"
    assert run("audit", "export", "-o", str(out), "--local") == (0, f"{out}\n")
    code, _ = run("audit", "public-key", "--local", "-o", str(key))
    assert code == 0 and key.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    code, output = run("audit", "verify", str(out), "--public-key", str(key))
    assert code == 0 and "covering the first 2 events" in output, output
    code, output = run("audit", "verify", str(out), "--public-key", str(key), "--json")
    assert code == 0 and json.loads(output)["size"] == 2

    other = tmp_path / "other.pem"
    other.write_text(Signer.generate().public_key_pem())
    code, output = run("audit", "verify", str(out), "--public-key", str(other))
    assert code == 1 and "not among the public keys" in output

    # A checkpoint kept from before must still be in the log.
    kept = tmp_path / "kept.json"
    with local_env.sessions() as session:
        cp = log.latest_checkpoint(session)
        assert cp is not None
        kept.write_text(json.dumps({"checkpoint": vars(log.record_of(cp))}))
    code, output = run(
        "audit", "verify", str(out), "--public-key", str(key), "--checkpoint", str(kept)
    )
    assert code == 0, output
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(out.read_text().splitlines(keepends=True)[:2]))
    code, output = run("audit", "verify", str(cut), "--public-key", str(key))
    assert code == 1 and "cut short" in output


def test_certificate_verify(local_env: AuditDB, tmp_path: Path) -> None:
    settings = get_settings()
    signer = load_signer(settings)
    steps = _steps(local_env, "dr_2")
    with local_env.sessions.begin() as session:
        proof = anchor(session, signer, [s["seq"] for s in steps])
    body = {
        "type": "expunge.deletion_certificate",
        "request": {"id": "dr_2"},
        "audit_steps": steps,
        "audit_anchor": proof,
    }
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps(sign_document(signer, body, CERTIFICATE_CONTEXT)))
    key, export = tmp_path / "key.pem", tmp_path / "audit.jsonl"
    key.write_text(signer.public_key_pem())
    assert run("audit", "export", "-o", str(export), "--local")[0] == 0

    code, output = run("certificate", "verify", str(cert), "--public-key", str(key))
    assert code == 0 and output.startswith("OK signature valid"), output
    assert "2 events proven" in output
    code, output = run(
        "certificate", "verify", str(cert), "--public-key", str(key), "--audit-export", str(export)
    )
    assert code == 0 and "all 2 audit steps are in the log" in output, output

    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"document": json.loads(cert.read_text())}))
    assert run("certificate", "verify", str(wrapped), "--public-key", str(key))[0] == 0

    altered = json.loads(cert.read_text())
    altered["request"]["id"] = "dr_other"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(altered))
    code, output = run("certificate", "verify", str(bad), "--public-key", str(key))
    assert code == 1 and "FAILED the signature does not match" in output, output

    other = tmp_path / "other.pem"
    other.write_text(Signer.generate().public_key_pem())
    code, output = run("certificate", "verify", str(cert), "--public-key", str(other))
    assert code == 1 and "not among the keys given" in output

    # Steps that the log does not hold are named, even under a valid signature.
    forged_steps = [{**steps[0], "hash": "ab" * 32}, steps[1]]
    forged = sign_document(signer, {**body, "audit_steps": forged_steps}, CERTIFICATE_CONTEXT)
    bad.write_text(json.dumps(forged))
    code, output = run(
        "certificate", "verify", str(bad), "--public-key", str(key), "--audit-export", str(export)
    )
    assert code == 1 and f"differ from the log at [{steps[0]['seq']}]" in output, output

    bad.write_text("{not json")
    assert run("certificate", "verify", str(bad), "--public-key", str(key))[0] == 1
