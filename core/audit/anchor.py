"""Anchor a certificate in the audit log: a signed checkpoint plus inclusion proofs.

A certificate lists the audit events of every step of a deletion request. ``anchor``
returns, for those events, their hashes and RFC 6962 inclusion proofs against a signed
checkpoint covering all of them; ``verify_anchor`` checks that offline with the public
key alone, so a regulator can confirm the steps are in the log that the deployment
later exports, without trusting the certificate's issuer about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from core.audit.log import checkpoint, leaf_hashes, record_of
from core.audit.merkle import inclusion_proof, leaf_hash, root, verify_inclusion
from core.audit.verify import (
    checkpoint_from_json,
    checkpoint_signature_ok,
    export_event_hashes,
    trusted_keys,
    verify_export,
)
from core.errors import NotFound
from core.signing import CERTIFICATE_CONTEXTS, Signer, verify_document
from models import AuditEvent

ANCHOR_FORMAT = "expunge-audit-anchor/v1"


def anchor(session: Session, signer: Signer, seqs: Iterable[int]) -> dict[str, Any]:
    """Evidence that events ``seqs`` are in the log (signs a new checkpoint if needed)."""
    wanted = sorted(set(seqs))
    cp = checkpoint(session, signer)
    events = []
    leaves = leaf_hashes(session, cp.tree_size) if wanted else []
    for seq in wanted:
        event = session.get(AuditEvent, seq)
        if event is None or seq >= cp.tree_size:
            raise NotFound(f"no audit event at position {seq}")
        events.append(
            {
                "seq": seq,
                "action": event.action,
                "hash": event.hash,
                "proof": [h.hex() for h in inclusion_proof(seq, cp.tree_size, leaves)],
            }
        )
    record = record_of(cp)
    if wanted and root(leaves).hex() != record.root_hash:  # the log changed under us
        raise RuntimeError("the audit log's root changed while anchoring; run /audit/verify")
    return {
        "format": ANCHOR_FORMAT,
        "checkpoint": {
            "tree_size": record.tree_size,
            "root_hash": record.root_hash,
            "signature": record.signature,
            "key_id": record.key_id,
            "at": record.at,
        },
        "events": events,
    }


def verify_anchor(
    anchor_doc: dict[str, Any], public_keys: Iterable[str | bytes | Ed25519PublicKey]
) -> tuple[bool, str]:
    """(ok, why): the checkpoint is signed by a trusted key and every proof leads to it."""
    try:
        if not isinstance(anchor_doc, dict) or anchor_doc.get("format") != ANCHOR_FORMAT:
            return False, "the audit anchor is not an expunge-audit-anchor/v1 object"
        cp = checkpoint_from_json(anchor_doc["checkpoint"])
        keys = trusted_keys(public_keys)
        key = keys.get(cp.key_id)
        if key is None:
            return False, f"the checkpoint is signed by key {cp.key_id!r}, not the one given"
        if not checkpoint_signature_ok(cp, key):
            return False, "the checkpoint's signature is invalid"
        root_hash = bytes.fromhex(cp.root_hash)
        for event in anchor_doc["events"]:
            seq = int(event["seq"])
            proof = [bytes.fromhex(h) for h in event["proof"]]
            leaf = leaf_hash(bytes.fromhex(event["hash"]))
            if not verify_inclusion(leaf, seq, cp.tree_size, proof, root_hash):
                return False, f"event {seq} is not in the signed tree of size {cp.tree_size}"
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return False, f"malformed audit anchor: {exc}"
    n = len(anchor_doc["events"])
    return True, f"{n} events proven in the signed log of size {cp.tree_size}"


def check_certificate(
    cert: dict[str, Any],
    public_keys: Sequence[str | bytes],
    export_path: Path | None = None,
) -> list[tuple[bool, str]]:
    """Every check a regulator can run offline on a certificate, as (passed, what) lines.

    1. The Ed25519 signature over the certificate (``core.signing.sign_document`` under
       ``CERTIFICATE_CONTEXTS``: v2 in RFC 8785 form, or v1), with the key the signature
       names among those given.
    2. If it carries an ``audit_anchor``: the anchor's signed checkpoint and inclusion
       proofs, and that each of its ``audit_steps`` is one of the proven events.
    3. If an audit export is given: the whole export verifies, and each audit step's
       hash is the one the log holds at that position.
    """
    results: list[tuple[bool, str]] = []
    keys = trusted_keys(public_keys)
    block = cert.get("signature")
    key_id = block.get("key_id") if isinstance(block, dict) else None
    key = keys.get(str(key_id))
    if key is None:
        results.append((False, f"signed by key {key_id!r}, which is not among the keys given"))
    else:
        pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        results.append(verify_document(cert, pem, CERTIFICATE_CONTEXTS))
    steps = cert.get("audit_steps") or []
    try:
        step_hashes = {int(s["seq"]): str(s["hash"]) for s in steps}
    except (KeyError, TypeError, ValueError):
        results.append((False, "malformed audit_steps"))
        step_hashes = {}

    anchor_doc = cert.get("audit_anchor")
    if anchor_doc is not None:
        verdict = verify_anchor(anchor_doc, keys.values())
        results.append(verdict)
        if verdict[0]:  # well formed, so its events can be read
            proven = {int(e["seq"]): e["hash"] for e in anchor_doc["events"]}
            missing = sorted(s for s, h in step_hashes.items() if proven.get(s) != h)
            if missing:
                results.append((False, f"audit steps not proven by the anchor: {missing}"))

    if export_path is not None:
        with export_path.open(encoding="utf-8") as fh:
            report = verify_export(fh, keys.values())
        results.append((report.ok, f"audit export: {report.reason}"))
        if report.ok:
            with export_path.open(encoding="utf-8") as fh:
                logged = export_event_hashes(fh, step_hashes)
            wrong = sorted(s for s, h in step_hashes.items() if logged.get(s) != h)
            if wrong:
                results.append((False, f"audit steps that differ from the log at {wrong}"))
            elif step_hashes:
                results.append((True, f"all {len(step_hashes)} audit steps are in the log"))
    elif anchor_doc is None and step_hashes:
        results.append(
            (True, f"{len(step_hashes)} audit steps listed (give --audit-export to check them)")
        )
    return results
