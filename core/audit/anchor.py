"""Anchor a certificate in the audit log: a signed checkpoint plus inclusion proofs.

A certificate lists the audit events of every step of a deletion request. ``anchor``
returns, for those events, their hashes and RFC 6962 inclusion proofs against a signed
checkpoint covering all of them; ``verify_anchor`` checks that offline with the public
key alone, so a regulator can confirm the steps are in the log that the deployment
later exports, without trusting the certificate's issuer about it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from core.audit.events import at_iso, canonical_payload, event_hash
from core.audit.log import (
    LogDoesNotVerify,
    checkpoint,
    checkpoint_verified,
    leaf_hashes,
    record_of,
)
from core.audit.merkle import inclusion_proof, leaf_hash, root, verify_inclusion
from core.audit.verify import (
    CheckpointRecord,
    checkpoint_from_json,
    checkpoint_signature_ok,
    export_event_hashes,
    trusted_keys,
    verify_export,
)
from core.db import session_factory
from core.errors import NotFound
from core.settings import Settings
from core.signing import (
    CERTIFICATE_CONTEXTS,
    Signer,
    load_signer,
    trusted_public_keys,
    verify_document,
)
from models import AuditEvent
from models.deletion import DeletionRequest

ANCHOR_FORMAT = "expunge-audit-anchor/v1"
CERTIFICATE_ANCHOR_FORMAT = "expunge-certificate-anchor/v1"
CERTIFICATE_ACTION = "deletion_request.certificate_issued"
log = logging.getLogger("expunge.audit")


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


def _checkpoint_json(record: CheckpointRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "tree_size": record.tree_size,
        "root_hash": record.root_hash,
        "signature": record.signature,
        "key_id": record.key_id,
        "at": record.at,
    }


def certificate_anchor(
    session: Session, signer: Signer, public_keys: Sequence[str | bytes], event: AuditEvent
) -> dict[str, Any]:
    """Where a certificate's own audit event (``certificate_issued``, which holds the
    certificate's sha256) sits in the log: the event, a checkpoint signed over a tree that
    holds it, and the RFC 6962 inclusion proof from the event to that tree's root.

    Call it after the event is committed (``place``): signing verifies the whole log, and
    the issuing transaction holds the audit lock. The checkpoint is signed only over a log
    that verifies; otherwise the anchor says why it has none (the certificate stands: a
    deletion must not wait on an audit investigation).
    """
    document = {
        "seq": event.seq,
        "at": at_iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "entity_type": event.entity_type,
        "entity_id": event.entity_id,
        "payload": json.loads(event.payload_json),
        "prev_hash": event.prev_hash,
    }
    out: dict[str, Any] = {
        "format": CERTIFICATE_ANCHOR_FORMAT,
        "event": document,
        "hash": event.hash,
    }
    try:
        cp = checkpoint_verified(session, signer, public_keys)
    except LogDoesNotVerify as exc:
        log.error("certificate for %s issued without an anchor: %s", event.entity_id, exc)
        return {**out, "checkpoint": None, "unanchored": exc.message}
    if event.seq >= cp.tree_size:  # not possible: the event is committed
        raise RuntimeError(f"checkpoint of {cp.tree_size} events misses event {event.seq}")
    leaves = leaf_hashes(session, cp.tree_size)
    if root(leaves).hex() != cp.root_hash:
        raise RuntimeError("the audit log's root changed while anchoring; run /audit/verify")
    return {
        **out,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "checkpoint": _checkpoint_json(record_of(cp)),
        "proof": [h.hex() for h in inclusion_proof(event.seq, cp.tree_size, leaves)],
    }


def place(
    session: Session,
    signer: Signer,
    public_keys: Sequence[str | bytes],
    request: DeletionRequest,
) -> dict[str, Any] | None:
    """Complete a request's certificate anchor (in the caller's transaction) unless it has
    a signed checkpoint already; returns the anchor, or None without a certificate.

    Works for any certificate that records its ``audit_seq`` and ``sha256``, those issued
    before anchoring existed included. Takes no audit lock: the event is committed.
    """
    if not request.certificate:
        return None
    current = dict(request.certificate.get("anchor") or {})
    if current.get("checkpoint"):
        return current
    event = session.get(AuditEvent, int(current["audit_seq"]))
    if (
        event is None
        or event.action != CERTIFICATE_ACTION
        or event.entity_id != request.id
        or json.loads(event.payload_json).get("certificate_sha256") != current.get("sha256")
    ):
        raise RuntimeError(
            f"audit event {current.get('audit_seq')} is not the certificate_issued event of "
            f"{request.id}; run /audit/verify"
        )
    placed = {"audit_seq": event.seq, "sha256": current["sha256"]}
    placed.update(certificate_anchor(session, signer, public_keys, event))
    request.certificate = {**request.certificate, "anchor": placed}
    return placed


def place_after_commit(settings: Settings, request_id: str) -> None:
    """``place`` in a session of its own, for an after-commit hook: failures are logged,
    never raised (the request is complete; the anchor can be placed on demand later)."""
    try:
        with session_factory(settings)() as session:
            request = session.get(DeletionRequest, request_id)
            if request is not None:
                place(session, load_signer(settings), trusted_public_keys(settings), request)
                session.commit()
    except Exception:
        log.exception("could not anchor the certificate of %s (placed on demand later)", request_id)


def anchor_checkpoint(anchor_doc: dict[str, Any]) -> CheckpointRecord | None:
    """The signed checkpoint a certificate anchor carries (to pass to a later
    verification as a kept checkpoint), or None."""
    cp = anchor_doc.get("checkpoint") if isinstance(anchor_doc, dict) else None
    return checkpoint_from_json(cp) if isinstance(cp, dict) else None


def verify_certificate_anchor(
    document: dict[str, Any],
    anchor_doc: dict[str, Any],
    public_keys: Iterable[str | bytes | Ed25519PublicKey],
) -> list[tuple[bool, str]]:
    """Offline checks of a certificate's anchor, as (passed, what) lines: the event is
    the certificate's own (its sha256, its request), its hash is recomputed from its
    contents, the checkpoint is signed by a trusted key, and the inclusion proof leads
    from the event to the checkpoint's root."""
    from core.signing import canonical_document

    try:
        if not isinstance(anchor_doc, dict) or anchor_doc.get("format") != (
            CERTIFICATE_ANCHOR_FORMAT
        ):
            return [(False, f"the anchor is not an {CERTIFICATE_ANCHOR_FORMAT} object")]
        event = anchor_doc["event"]
        results: list[tuple[bool, str]] = []
        digest = hashlib.sha256(canonical_document(document)).hexdigest()
        request_id = (document.get("request") or {}).get("id")
        payload = event["payload"]
        own = (
            event["action"] == CERTIFICATE_ACTION
            and event["entity_id"] == request_id
            and isinstance(payload, dict)
            and payload.get("certificate_sha256") == digest
        )
        results.append(
            (own, f"audit event {event['seq']} records this certificate (sha256 {digest[:16]}…)")
            if own
            else (False, f"audit event {event['seq']} is not this certificate's issuing event")
        )
        recomputed = event_hash(
            int(event["seq"]),
            str(event["at"]),
            str(event["actor"]),
            str(event["action"]),
            str(event["entity_type"]),
            str(event["entity_id"]),
            canonical_payload(payload),
            str(event["prev_hash"]),
        )
        if recomputed != anchor_doc["hash"]:
            results.append((False, f"audit event {event['seq']}'s contents do not match its hash"))
            return results
        if anchor_doc.get("checkpoint") is None:
            why = anchor_doc.get("unanchored", "no reason given")
            results.append((False, f"the certificate has no signed checkpoint: {why}"))
            return results
        cp = checkpoint_from_json(anchor_doc["checkpoint"])
        if (cp.tree_size, cp.root_hash) != (anchor_doc["tree_size"], anchor_doc["root_hash"]):
            results.append((False, "the anchor's tree size or root differs from its checkpoint's"))
            return results
        key = trusted_keys(public_keys).get(cp.key_id)
        if key is None:
            results.append((False, f"the checkpoint is signed by key {cp.key_id!r}, not one given"))
            return results
        if not checkpoint_signature_ok(cp, key):
            results.append((False, "the anchor's checkpoint signature is invalid"))
            return results
        proof = [bytes.fromhex(h) for h in anchor_doc["proof"]]
        leaf = leaf_hash(bytes.fromhex(anchor_doc["hash"]))
        seq = int(event["seq"])
        if not verify_inclusion(leaf, seq, cp.tree_size, proof, bytes.fromhex(cp.root_hash)):
            results.append(
                (False, f"audit event {seq} is not in the signed tree of size {cp.tree_size}")
            )
            return results
        results.append(
            (
                True,
                f"audit event {seq} is proven in the signed log of size {cp.tree_size} "
                f"(root {cp.root_hash[:16]}…, checkpoint signed at {cp.at})",
            )
        )
        return results
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [(False, f"malformed certificate anchor: {exc}")]


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
    certificate_anchor_doc: dict[str, Any] | None = None,
) -> list[tuple[bool, str]]:
    """Every check a regulator can run offline on a certificate, as (passed, what) lines.

    1. The Ed25519 signature over the certificate (``core.signing.sign_document`` under
       ``CERTIFICATE_CONTEXTS``: v2 in RFC 8785 form, or v1), with the key the signature
       names among those given.
    2. If it carries an ``audit_anchor``: the anchor's signed checkpoint and inclusion
       proofs, and that each of its ``audit_steps`` is one of the proven events.
    3. If an audit export is given: the whole export verifies, and each audit step's
       hash is the one the log holds at that position.
    4. If the certificate's anchor is given (``GET .../certificate/anchor``, or a saved
       ``{"document", "anchor"}`` bundle): ``verify_certificate_anchor``; with an export
       too, the anchor's checkpoint is held against the export, so an export cut short
       before the certificate's event (or rewritten below it) fails.
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

    kept: list[CheckpointRecord] = []
    if certificate_anchor_doc is not None:
        results.extend(verify_certificate_anchor(cert, certificate_anchor_doc, keys.values()))
        try:
            kept_cp = anchor_checkpoint(certificate_anchor_doc)
        except ValueError:  # reported as malformed above
            kept_cp = None
        kept = [kept_cp] if kept_cp is not None else []

    if export_path is not None:
        with export_path.open(encoding="utf-8") as fh:
            report = verify_export(fh, keys.values(), trusted_checkpoints=kept)
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
