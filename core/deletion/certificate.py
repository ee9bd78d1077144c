"""The certificate of a completed deletion request: RFC 8785 JSON, Ed25519-signed.

It says what was asked (subject ids only as salted commitments), what was affected,
what was done (method, exact or approximate), the evidence (evaluation numbers next to
the thresholds they passed), checkpoint digests before and after, timestamps, and the
audit-log position of every step. ``expunge certificate verify`` checks it offline.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.audit.anchor import place_after_commit
from core.audit.events import commit_subject, subject_salt
from core.audit.log import append as audit
from core.audit.log import write_pending
from core.deletion.lm import lineage as lm_lineage
from core.deletion.policy import NOT_CERTIFIED, exact_evidence
from core.deletion.purge import after_commit
from core.deletion.scope import LINEAGE_UNKNOWN
from core.settings import Settings
from core.signing import CERTIFICATE_CONTEXT as CONTEXT
from core.signing import canonical_document, load_signer, sign_document
from models import DatasetVersion, Job, ModelVersion
from models.audit import AuditEvent
from models.base import utcnow
from models.deletion import DeletionItem, DeletionRequest


def commitments(settings: Settings, values: list[Any]) -> list[str]:
    salt = subject_salt(settings)
    return sorted(commit_subject(str(v), salt) for v in values)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _evidence(item: DeletionItem, verdict: dict[str, Any]) -> dict[str, str]:
    if verdict.get("level"):
        return {"level": verdict["level"], "evidence": verdict.get("evidence") or ""}
    if item.exact:  # retired, nothing left, or a verdict recorded before levels existed
        return exact_evidence(item.method)
    return {"level": NOT_CERTIFIED, "evidence": "not certified (no verdict recorded)"}


def _attempts(item: DeletionItem, verdict: dict[str, Any]) -> list[dict[str, Any]]:
    if "attempts" in verdict:
        return list(verdict["attempts"])
    return [
        {k: v for k, v in h.items() if k != "event"}
        for h in item.history
        if h.get("event") == "attempt"
    ]


def _unknown_lineage(session: Session, request: DeletionRequest) -> list[dict[str, Any]]:
    """Versions with no recorded training samples (uploaded checkpoints), named with what
    the requester should know: nobody can tell whether they saw the data."""
    out = []
    for vid in (request.blast_radius or {}).get("unverifiable_versions") or []:
        version = session.get(ModelVersion, vid)
        out.append(
            {
                "version_id": vid,
                "model_id": version.model_id if version else None,
                "sha256": version.sha256 if version else None,
                "status": version.status if version else None,
                "note": LINEAGE_UNKNOWN,
            }
        )
    return out


def _outcome(request: DeletionRequest) -> str:
    from core.deletion.flows import erased_outcome

    return erased_outcome(request)


def build(session: Session, request: DeletionRequest, settings: Settings) -> dict[str, Any]:
    kind = request.scope_kind
    values = request.scope.get(kind, [])
    scope: dict[str, Any] = {"kind": kind}
    if kind == "labels":
        scope["labels"] = values
        scope["model_id"] = request.scope.get("model_id")
    else:
        # A redacted request (closed) holds only its commitments.
        scope["commitments"] = request.scope_commitments or commitments(settings, values)
        scope["commitment"] = "sha256(deployment salt || id), hex"
    models = []
    radius = request.blast_radius or {}
    affected = set(radius.get("versions") or []) | set(radius.get("descendants") or [])
    items = session.scalars(
        select(DeletionItem).where(DeletionItem.request_id == request.id).order_by(DeletionItem.id)
    ).all()
    for item in items:
        job = session.get(Job, item.job_id) if item.job_id else None
        batch = (job.spec or {}).get("deletion_request_ids") or [request.id] if job else []
        old = session.get(ModelVersion, item.model_version_id)
        new = session.get(ModelVersion, item.result_version_id) if item.result_version_id else None
        verdict = item.verdict or {}
        evidence = _evidence(item, verdict)
        evaluation = verdict.get("evaluation") or {}
        models.append(
            {
                "model_id": old.model_id if old else None,
                "old_version_id": item.model_version_id,
                "old_sha256": old.sha256 if old else None,
                "old_status": old.status if old else None,
                "new_version_id": new.id if new else None,
                "new_sha256": new.sha256 if new else None,
                "action": {"retire": "retired", "none": "nothing_left_to_forget"}.get(
                    item.method, "unlearned"
                ),
                # The run that did it; a batched run served several requests at once.
                "job_id": item.job_id,
                "batched_requests": len(batch),
                "method": item.method,
                "exact": item.exact,
                "fallback_used": any(h.get("event") == "fallback" for h in item.history),
                # The level of evidence, in a sentence a compliance officer can repeat.
                "evidence_level": evidence["level"],
                "evidence": evidence["evidence"],
                "forget_count_trained": evaluation.get("forget_count_trained"),
                "evaluation": verdict.get("evaluation"),
                "original_evaluation": verdict.get("original_evaluation"),
                "checks": verdict.get("checks", []),
                # Every run on this version, passed or not, with its figures.
                "attempts": _attempts(item, verdict),
                # A language model: its base, and why the base never saw the data.
                **({"lineage": lm} if old and (lm := lm_lineage(session, old, affected)) else {}),
            }
        )
    unknown = _unknown_lineage(session, request)
    datasets = [
        {
            "dataset_id": v.dataset_id,
            "version": v.version,
            "content_hash": v.content_hash,
            "reason": v.reason,
        }
        for v in session.scalars(
            select(DatasetVersion).where(DatasetVersion.reason.contains(request.id))
        )
    ]
    steps = [
        {"seq": e.seq, "action": e.action, "at": _iso(e.at), "hash": e.hash}
        for e in session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "deletion_request", AuditEvent.entity_id == request.id)
            .order_by(AuditEvent.seq)
        )
    ]
    return {
        "type": "expunge.deletion_certificate",
        "version": 1,
        "request": {
            "id": request.id,
            "legal_basis": request.legal_basis,
            "requester_reference": request.requester_reference,
            "scope": scope,
            "received_at": _iso(request.received_at),
            "due_at": _iso(request.due_at),
            "extended": request.extended,
            "filed_by": request.created_by,
            "approved_by": request.approved_by,
            "approved_at": _iso(request.approved_at),
            "completed_at": _iso(request.completed_at),
        },
        "outcome": _outcome(request) if models or datasets else "nothing_to_delete",
        "models": models,
        "unknown_lineage": unknown,
        "datasets": datasets,
        "audit_steps": steps,
        "issued_at": _iso(utcnow()),
    }


def issue(session: Session, request: DeletionRequest, settings: Settings) -> dict[str, Any]:
    signed = sign_document(load_signer(settings), build(session, request, settings), CONTEXT)
    # The digest is over the exact bytes the API serves (RFC 8785 for v2 certificates).
    digest = hashlib.sha256(canonical_document(signed)).hexdigest()
    write_pending(session)  # the steps' own events (versions purged, ...) come first
    event = audit(
        session,
        "system",
        "deletion_request.certificate_issued",
        "deletion_request",
        request.id,
        {"certificate_sha256": digest},
    )
    from core.deletion.flows import announce

    announce(session, request, event.action, event.seq, event.at)
    # The signed document is returned as is (verifiable offline); where the log anchors
    # it travels beside it, since the anchor event can only exist after the signature.
    request.certificate = {"document": signed, "anchor": {"audit_seq": event.seq, "sha256": digest}}
    # The rest of the anchor (a checkpoint signed over the event, its inclusion proof) is
    # placed once this transaction has committed: signing verifies the whole log, which
    # must not happen while this transaction holds the audit lock. If that does not run
    # (a crash), GET /audit/certificates/{id}/anchor places it on demand.
    request_id = request.id
    after_commit(session, lambda: place_after_commit(settings, request_id))
    return signed
