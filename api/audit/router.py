"""The audit log over REST: events, verification, signed checkpoints, proofs, export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import PlainTextResponse, StreamingResponse

from api.audit import repository, service
from api.audit.schemas import (
    AuditEventPublic,
    AuditEventsPublic,
    CertificateAnchorPublic,
    CheckpointPublic,
    CheckpointsPublic,
    ConsistencyProofPublic,
    InclusionProofPublic,
    VerifyReportPublic,
)
from api.deps import SessionDep, SettingsDep, require
from api.ratelimit import rate_limit
from api.schemas import ERRORS, NOT_FOUND, ErrorBody, ValidationErrorBody
from core.audit import log
from core.audit.anchor import place
from core.errors import NotFound, ServiceUnavailable
from core.signing import SigningKeyError, trusted_public_keys
from models import ApiKey
from models.deletion import DeletionRequest

router = APIRouter(prefix="/audit", tags=["audit"])

# The audit log is evidence for compliance: admins and compliance officers read it.
# (It holds no personal data; it does show who did what, when.)
AUDIT = ("admin", "compliance")
Auditor = Annotated[ApiKey, Depends(require(*AUDIT))]
INVALID = {422: {"model": ValidationErrorBody, "description": "Positions outside the log"}}
UNAVAILABLE = {503: {"model": ErrorBody, "description": "The signing key is not usable"}}
EXPORT_CHUNK_LINES = 2000


@router.get("/events", response_model=AuditEventsPublic, responses=ERRORS)
def list_events(
    session: SessionDep,
    _: Auditor,
    action: Annotated[str | None, Query(max_length=80)] = None,
    entity_type: Annotated[str | None, Query(max_length=40)] = None,
    entity_id: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[int | None, Query(ge=0, description="A next_cursor from before")] = None,
    order: Literal["desc", "asc"] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditEventsPublic:
    """Events, newest first by default; filter by action and entity."""
    rows = repository.page(
        session,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        cursor=cursor,
        descending=order == "desc",
        limit=limit + 1,
    )
    data = [AuditEventPublic.of(e) for e in rows[:limit]]
    more = len(rows) > limit
    return AuditEventsPublic(
        data=data, count=len(data), next_cursor=str(data[-1].seq) if more else None
    )


@router.get(
    "/verify",
    response_model=VerifyReportPublic,
    responses={**ERRORS, **UNAVAILABLE},
    dependencies=[rate_limit("audit")],
)
def verify(session: SessionDep, settings: SettingsDep, _: Auditor) -> VerifyReportPublic:
    """Recompute every event hash, link and checkpoint: the first bad position, if any."""
    return VerifyReportPublic.of(service.verify(session, settings))


@router.post(
    "/checkpoints",
    status_code=status.HTTP_201_CREATED,
    response_model=CheckpointPublic,
    responses={
        **ERRORS,
        **UNAVAILABLE,
        200: {"description": "The latest one still holds"},
        409: {"model": ErrorBody, "description": "The log does not verify: nothing is signed"},
    },
    dependencies=[rate_limit("audit")],
)
def create_checkpoint(
    session: SessionDep, settings: SettingsDep, response: Response, _: Auditor
) -> CheckpointPublic:
    """Sign the current tree head (size and RFC 6962 root) with the deployment's key,
    after verifying the whole log: a log that does not verify is refused (409)."""
    cp, created = service.create_checkpoint(session, settings)
    if not created:
        response.status_code = status.HTTP_200_OK
    return CheckpointPublic.of(cp)


@router.get("/checkpoints", response_model=CheckpointsPublic, responses=ERRORS)
def list_checkpoints(
    session: SessionDep, _: Auditor, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> CheckpointsPublic:
    """Signed checkpoints, newest first."""
    data = [CheckpointPublic.of(cp) for cp in log.list_checkpoints(session, limit=limit)]
    return CheckpointsPublic(data=data, count=len(data))


@router.get(
    "/proofs/inclusion",
    response_model=InclusionProofPublic,
    responses={**ERRORS, **NOT_FOUND, **INVALID},
)
def inclusion_proof(
    session: SessionDep,
    _: Auditor,
    seq: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int | None, Query(ge=1, description="Default: the whole log")] = None,
) -> InclusionProofPublic:
    """RFC 6962 proof that event ``seq`` is in the tree of ``tree_size`` events."""
    return InclusionProofPublic.of(log.inclusion(session, seq, tree_size))


@router.get(
    "/proofs/consistency", response_model=ConsistencyProofPublic, responses={**ERRORS, **INVALID}
)
def consistency_proof(
    session: SessionDep,
    _: Auditor,
    first: Annotated[int, Query(ge=0)],
    second: Annotated[int | None, Query(ge=0, description="Default: the whole log")] = None,
) -> ConsistencyProofPublic:
    """RFC 6962 proof that the first ``first`` events are a prefix of the first ``second``."""
    return ConsistencyProofPublic.of(log.consistency(session, first, second))


@router.get(
    "/public-key",
    response_class=PlainTextResponse,
    responses={**UNAVAILABLE, 200: {"content": {"application/x-pem-file": {}}}},
)
def public_key(settings: SettingsDep) -> PlainTextResponse:
    """The Ed25519 public key that signs checkpoints and certificates (PEM; no auth)."""
    signer = service.signer(settings)
    return PlainTextResponse(
        signer.public_key_pem(),
        media_type="application/x-pem-file",
        headers={"X-Expunge-Key-Id": signer.key_id},
    )


@router.get(
    "/certificates/{request_id}/anchor",
    response_model=CertificateAnchorPublic,
    responses={**ERRORS, **NOT_FOUND},
)
def certificate_anchor(
    request_id: str, session: SessionDep, settings: SettingsDep, _: Auditor
) -> CertificateAnchorPublic:
    """A completed request's certificate anchor: the certificate's own audit event, the
    checkpoint signed after it and the inclusion proof (verify offline with
    ``expunge certificate verify CERT --anchor ANCHOR --public-key KEY``). Placed now if
    it is missing (a certificate issued before anchoring existed, or an interrupted one)."""
    request = session.get(DeletionRequest, request_id)
    if request is None:
        raise NotFound(f"deletion request {request_id} not found")
    if not request.certificate:
        raise NotFound(
            f"request {request_id} is {request.status}; its certificate is issued on completion"
        )
    anchor = (request.certificate.get("anchor") or {})
    if not anchor.get("checkpoint"):
        try:
            keys = trusted_public_keys(settings)
        except SigningKeyError as exc:
            raise ServiceUnavailable(f"a signing key is not usable: {exc}") from exc
        anchor = place(session, service.signer(settings), keys, request) or anchor
        session.commit()
    return CertificateAnchorPublic.model_validate(anchor)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={**ERRORS, 200: {"content": {"application/x-ndjson": {}}}},
    dependencies=[rate_limit("audit")],
)
def export(request: Request, _: Auditor) -> StreamingResponse:
    """The whole log as JSON lines, for ``expunge audit verify EXPORT --public-key FILE``."""
    factory = request.app.state.session_factory

    def lines() -> Iterator[str]:
        # Its own session: the request's is closed before the body is streamed.
        with factory() as session:
            batch: list[str] = []
            for line in log.export(session):
                batch.append(line)
                if len(batch) >= EXPORT_CHUNK_LINES:
                    yield "".join(batch)
                    batch.clear()
            yield "".join(batch)

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="expunge-audit.jsonl"'},
    )
