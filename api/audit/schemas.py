from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from core.audit.events import at_iso
from core.audit.log import ConsistencyProof, InclusionProof
from core.audit.verify import VerifyReport
from models import AuditCheckpoint, AuditEvent


class AuditEventPublic(BaseModel):
    seq: int = Field(description="0-based position in the log")
    at: str = Field(description="UTC, ISO 8601 with microseconds: the exact string hashed")
    actor: str
    action: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any] | None = Field(
        description="No personal data: subject ids appear only as salted commitments"
    )
    payload_raw: str | None = Field(
        default=None,
        description="Set only when the stored payload is not valid JSON "
        "(a sign of tampering: run /audit/verify)",
    )
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventPublic:
        try:
            payload = json.loads(event.payload_json)
            raw = None if isinstance(payload, dict) else event.payload_json
        except ValueError:
            payload, raw = None, event.payload_json
        return cls(
            seq=event.seq,
            at=at_iso(event.at),
            actor=event.actor,
            action=event.action,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            payload=payload if raw is None else None,
            payload_raw=raw,
            prev_hash=event.prev_hash,
            hash=event.hash,
        )


class AuditEventsPublic(BaseModel):
    data: list[AuditEventPublic]
    count: int
    next_cursor: str | None = None


class VerifyReportPublic(BaseModel):
    ok: bool
    size: int = Field(description="Events read (all of them when ok)")
    first_bad_seq: int | None = Field(description="The first position that is not as logged")
    reason: str
    root_hash: str | None = Field(description="RFC 6962 root of the whole log, when ok")
    checkpoints_verified: int
    checkpoints_unverified: int = Field(
        description="Checkpoints whose signature could not be checked (no key at hand): "
        "root checked only; always 0 here, where every checkpoint must carry a valid signature"
    )
    signed_size: int = Field(description="Events covered by a checkpoint with a valid signature")

    @classmethod
    def of(cls, report: VerifyReport) -> VerifyReportPublic:
        data = report.as_dict()
        data.pop("key_ids", None)
        return cls(**data)


class CheckpointPublic(BaseModel):
    id: int
    tree_size: int
    root_hash: str
    signature: str = Field(description="base64 Ed25519 signature (see docs/audit.md)")
    key_id: str
    at: str = Field(description="The exact signed timestamp string")

    @classmethod
    def of(cls, cp: AuditCheckpoint) -> CheckpointPublic:
        return cls(
            id=cp.id,
            tree_size=cp.tree_size,
            root_hash=cp.root_hash,
            signature=cp.signature,
            key_id=cp.key_id,
            at=at_iso(cp.at),
        )


class CheckpointsPublic(BaseModel):
    data: list[CheckpointPublic]
    count: int


class InclusionProofPublic(BaseModel):
    seq: int
    tree_size: int
    event_hash: str
    leaf_hash: str = Field(description="sha256(0x00 || event hash bytes)")
    root_hash: str
    proof: list[str] = Field(description="RFC 6962 audit path, hex, deepest first")
    checkpoint: CheckpointPublic | None = Field(
        description="A signed checkpoint of exactly this tree size, if one exists"
    )

    @classmethod
    def of(cls, p: InclusionProof) -> InclusionProofPublic:
        return cls(
            seq=p.seq,
            tree_size=p.tree_size,
            event_hash=p.event_hash,
            leaf_hash=p.leaf_hash,
            root_hash=p.root_hash,
            proof=p.proof,
            checkpoint=CheckpointPublic.of(p.checkpoint) if p.checkpoint else None,
        )


class ConsistencyProofPublic(BaseModel):
    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str] = Field(description="RFC 6962 consistency proof, hex")

    @classmethod
    def of(cls, p: ConsistencyProof) -> ConsistencyProofPublic:
        return cls(**vars(p))


class AnchorCheckpointPublic(BaseModel):
    id: int | None = None
    tree_size: int
    root_hash: str
    signature: str
    key_id: str
    at: str


class CertificateAnchorPublic(BaseModel):
    """Where a certificate sits in the log (``expunge-certificate-anchor/v1``): its own
    ``certificate_issued`` event, a checkpoint signed over a tree holding it, and the
    RFC 6962 inclusion proof. ``expunge certificate verify CERT --anchor THIS`` checks it."""

    format: str
    audit_seq: int
    sha256: str = Field(description="sha256 of the certificate's canonical bytes")
    event: dict[str, Any] = Field(description="The event, every hashed field")
    hash: str = Field(description="The event's hash")
    tree_size: int | None = None
    root_hash: str | None = None
    checkpoint: AnchorCheckpointPublic | None = Field(
        description="Signed over the first tree_size events; null if the log did not "
        "verify when the certificate was issued (then 'unanchored' says why)"
    )
    proof: list[str] | None = Field(default=None, description="RFC 6962 audit path, hex")
    unanchored: str | None = None
