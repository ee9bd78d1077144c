"""Ed25519 signing: canonical JSON, key sources, documents, and what production refuses."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
import rfc8785

from core.audit.events import commit_subject, subject_matches, subject_salt
from core.settings import Settings
from core.signing import (
    CERTIFICATE_CONTEXT,
    CERTIFICATE_CONTEXT_V1,
    CERTIFICATE_CONTEXTS,
    CHECKPOINT_CONTEXT,
    Signer,
    SigningKeyError,
    canonical_document,
    canonical_json,
    jcs,
    load_signer,
    public_key_id,
    sign_document,
    signed_message,
    verify,
    verify_document,
)


def test_canonical_json_is_one_encoding() -> None:
    assert canonical_json({"b": 1, "a": [1.5, "é", None, True]}) == (
        '{"a":[1.5,"é",null,true],"b":1}'.encode()
    )
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})
    for bad in (float("nan"), float("inf"), {"x": [float("-inf")]}, {1: "non-string key"}):
        with pytest.raises(ValueError):
            canonical_json(bad)


V1_FIXTURE = Path(__file__).parents[2] / "fixtures" / "certificates" / "v1.json"


def test_certificates_sign_the_rfc8785_form_and_checkpoints_keep_theirs() -> None:
    signer = Signer.generate()
    document = {"b": 1.0, "a": [1e-05, "é\u2028", None, True], "€": 1e21, "\u00e9": 2}
    message = signed_message(CERTIFICATE_CONTEXT, document)
    assert CERTIFICATE_CONTEXT == "expunge.certificate.v2"
    assert message == CERTIFICATE_CONTEXT.encode() + b"\n" + rfc8785.dumps(document)
    assert jcs(document) != canonical_json(document)  # 1.0 vs 1, 1e-05 vs 0.00001
    assert signed_message(CHECKPOINT_CONTEXT, document).endswith(canonical_json(document))
    cert = sign_document(signer, document, CERTIFICATE_CONTEXT)
    served = canonical_document(cert)
    assert rfc8785.dumps(json.loads(served)) == served
    assert verify_document(json.loads(served), signer.public_key_pem(), CERTIFICATE_CONTEXTS)[0]
    for bad in (float("nan"), {"x": 2**60}, {1: "non-string key"}):
        with pytest.raises(ValueError):
            jcs(bad)


def test_a_stored_v1_certificate_still_verifies_under_its_own_form() -> None:
    """Signed before the move to RFC 8785 (tests/fixtures/certificates/v1.json): its bytes
    are not the JCS form, and it verifies through the v1 path only."""
    fixture = json.loads(V1_FIXTURE.read_text(encoding="utf-8"))
    served = fixture["served"].encode("utf-8")
    cert = json.loads(served)
    assert cert["signature"]["context"] == CERTIFICATE_CONTEXT_V1
    assert rfc8785.dumps(cert) != served  # so the old path is what makes it verify
    assert canonical_document(cert) == served
    assert hashlib.sha256(canonical_document(cert)).hexdigest() == fixture["sha256"]
    assert verify_document(cert, fixture["public_key_pem"], CERTIFICATE_CONTEXTS) == (
        True,
        "signature valid",
    )
    ok, why = verify_document(cert, fixture["public_key_pem"], CERTIFICATE_CONTEXT)
    assert not ok and "expected" in why
    # Re-labelled as v2 the same bytes no longer verify: the context picks the form.
    relabelled = {**cert, "signature": {**cert["signature"], "context": CERTIFICATE_CONTEXT}}
    ok, why = verify_document(relabelled, fixture["public_key_pem"], CERTIFICATE_CONTEXTS)
    assert not ok and "altered" in why
    tampered = {**cert, "outcome": "nothing_to_delete"}
    assert not verify_document(tampered, fixture["public_key_pem"], CERTIFICATE_CONTEXTS)[0]


def test_signer_from_pem_and_from_raw_base64_agree() -> None:
    signer = Signer.generate()
    raw = signer.private_key.private_bytes_raw()
    from_pem = Signer.from_text(signer.private_key_pem().decode())
    from_raw = Signer.from_text(base64.b64encode(raw).decode())
    assert from_pem.key_id == from_raw.key_id == signer.key_id
    assert len(signer.key_id) == 16 and public_key_id(signer.public_key_pem()) == signer.key_id
    message = b"tree head"
    assert verify(signer.public_key_pem(), message, from_raw.sign(message))
    assert not verify(signer.public_key_pem(), message + b"!", signer.sign(message))
    assert not verify(Signer.generate().public_key_pem(), message, signer.sign(message))


@pytest.mark.parametrize(
    "value",
    [
        "not a key",
        base64.b64encode(b"short").decode(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_unusable_keys_are_refused_with_a_reason(value: str) -> None:
    with pytest.raises(SigningKeyError, match="EXPUNGE_SIGNING_KEY"):
        Signer.from_text(value)


def test_embedded_default_generates_the_key_once_0600(tmp_path: Path) -> None:
    settings = Settings(env="local", home=tmp_path / "home")
    first = load_signer(settings)
    path = tmp_path / "home" / "signing.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = Signer.from_text(path.read_bytes())
    assert again.key_id == first.key_id
    # The environment wins over the file.
    configured = Signer.generate()
    settings_env = Settings(
        env="local", home=tmp_path / "home", signing_key=configured.private_key_pem().decode()
    )
    assert load_signer(settings_env).key_id == configured.key_id


def test_production_refuses_to_start_without_a_signing_key_and_salt() -> None:
    base = {
        "env": "production",
        "database_url": "postgresql://h/db",
        "storage_url": "s3://h:9000/b",
        "s3_secret_key": "a-real-secret-value-here",
    }
    with pytest.raises(ValueError, match="EXPUNGE_SIGNING_KEY"):
        Settings(**base, subject_salt="s" * 32)
    with pytest.raises(ValueError, match="EXPUNGE_SUBJECT_SALT"):
        Settings(**base, signing_key="k" * 44)
    ok = Settings(**base, signing_key="k" * 44, subject_salt="s" * 32)
    assert ok.signing_key and ok.subject_salt


def test_signed_documents_verify_and_tampering_is_named() -> None:
    signer = Signer.generate()
    public = signer.public_key_pem()
    cert = sign_document(signer, {"request": "dr_1", "evidence": {"ua": 0.99}}, CERTIFICATE_CONTEXT)
    assert verify_document(cert, public, CERTIFICATE_CONTEXT) == (True, "signature valid")
    altered = {**cert, "evidence": {"ua": 0.5}}
    ok, why = verify_document(altered, public, CERTIFICATE_CONTEXT)
    assert not ok and "altered" in why
    ok, why = verify_document(cert, Signer.generate().public_key_pem(), CERTIFICATE_CONTEXT)
    assert not ok and "key" in why
    # The context binds the kind: a certificate signature is not a checkpoint signature.
    ok, why = verify_document(cert, public, CHECKPOINT_CONTEXT)
    assert not ok and "expected" in why
    assert signed_message(CHECKPOINT_CONTEXT, {}) != signed_message(CERTIFICATE_CONTEXT, {})
    with pytest.raises(ValueError):
        sign_document(signer, cert, CERTIFICATE_CONTEXT)


def test_subject_commitments_are_salted(tmp_path: Path) -> None:
    salt = subject_salt(Settings(env="local", home=tmp_path))
    assert stat.S_IMODE((tmp_path / "subject.salt").stat().st_mode) == 0o600
    assert subject_salt(Settings(env="local", home=tmp_path)) == salt
    c = commit_subject("alice@example.com", salt)
    assert len(c) == 64 and "alice" not in c
    assert subject_matches(c, "alice@example.com", salt)
    assert commit_subject("alice@example.com", b"another deployment") != c
    assert subject_salt(Settings(env="local", home=tmp_path, subject_salt="configured")) == (
        b"configured"
    )
