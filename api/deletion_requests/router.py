"""Deletion requests: compliance files, a second person approves, Expunge does the rest."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

from fastapi import APIRouter, File, Query, Request, UploadFile, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from api.deletion_requests.notes import timeline_notes
from api.deletion_requests.schemas import (
    Decision,
    DeletionItemPublic,
    DeletionPreviewPublic,
    DeletionRequestCreate,
    DeletionRequestPublic,
    DeletionRequestsPublic,
    RequestScope,
)
from api.deps import Compliance, Reader, SessionDep, SettingsDep, StoreDep
from api.ratelimit import rate_limit
from api.schemas import CONFLICT, ERRORS, FORM_TEXT, NOT_FOUND, ErrorBody
from core.deletion import flows, repository, service, states
from core.deletion.concepts import resolve_concept
from core.deletion.redact import redacted_scope
from core.deletion.render import render_html, render_pdf
from core.deletion.scope import resolve
from core.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from core.queue import send_job
from core.signing import canonical_document
from models import ApiKey, Model
from models.audit import AuditEvent
from models.base import utcnow
from models.deletion import DeletionRequest

router = APIRouter(prefix="/deletion-requests", tags=["deletion-requests"], responses=ERRORS)


def _get(session: SessionDep, request_id: str) -> DeletionRequest:
    found = repository.get(session, request_id)
    if found is None:
        raise NotFound(f"deletion request {request_id} not found")
    return found


DECIDERS = ("admin", "compliance")


def _public(session: SessionDep, request: DeletionRequest, key: ApiKey) -> DeletionRequestPublic:
    out = DeletionRequestPublic.model_validate(request)
    out.allowed_actions = states.allowed_actions(
        request.status,
        role=key.role,
        caller=key.id,
        created_by=request.created_by,
        extended=request.extended,
    )
    out.overdue, out.due_soon = flows.overdue(request), flows.due_soon(request)
    out.has_certificate = request.certificate is not None
    out.items = []
    for item, job_state, job_progress in repository.items_with_jobs(session, request.id):
        public = DeletionItemPublic.model_validate(item)
        public.job_state, public.job_progress = job_state, job_progress
        out.items.append(public)
    return out


def _scope(
    session: SessionDep, scope: RequestScope
) -> tuple[str, list[Any], str | None, str | None]:
    """(scope kind, values, model id, concept name) of a request's scope, checked
    against the model."""
    if scope.concept is not None:
        model = session.get(Model, scope.concept.model_id)
        if model is None:
            raise NotFound(f"model {scope.concept.model_id} not found")
        concept = resolve_concept(
            session,
            model,
            label=scope.concept.label,
            labels=scope.concept.labels,
            name=scope.concept.name,
        )
        return "labels", concept.labels, model.id, concept.name
    if scope.subject_ids:
        return "subject_ids", sorted(set(scope.subject_ids)), None, None
    return "sample_ids", sorted(set(scope.sample_ids or [])), None, None


def _file(
    session: SessionDep, settings: SettingsDep, body: DeletionRequestCreate, actor: str
) -> DeletionRequest:
    kind, values, model_id, concept_name = _scope(session, body.scope)
    return flows.file_request(
        session,
        scope_kind=kind,
        values=values,
        model_id=model_id,
        concept_name=concept_name,
        legal_basis=body.legal_basis,
        requester_reference=body.requester_reference,
        received_at=body.received_at or utcnow(),
        actor=actor,
        settings=settings,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DeletionRequestPublic,
    responses={**NOT_FOUND},
    dependencies=[rate_limit("deletion_requests")],
)
def file_request(
    body: DeletionRequestCreate, session: SessionDep, settings: SettingsDep, key: Compliance
) -> DeletionRequestPublic:
    """File a request; the response already shows the blast radius and the plan."""
    return _public(session, _file(session, settings, body, key.id), key)


@router.post("/preview", response_model=DeletionPreviewPublic, responses={**NOT_FOUND})
def preview(
    body: DeletionRequestCreate, session: SessionDep, _: Compliance
) -> DeletionPreviewPublic:
    """The blast radius a request would have, before filing it: nothing is written or tainted."""
    kind, values, model_id, _ = _scope(session, body.scope)
    radius = resolve(session, kind, values, model_id=model_id)
    if kind == "labels":
        radius.samples, radius.sample_ids = {}, {}  # as filed: a class keeps its samples
    session.rollback()  # resolve only reads; make sure this request leaves nothing behind
    return DeletionPreviewPublic(
        scope_kind=kind,
        blast_radius=radius.summary(),
        nothing_to_delete=radius.empty,
        due_at=flows.due_date(body.legal_basis, body.received_at or utcnow()),
    )


BULK_CSV_MAX_BYTES = 5_000_000


def _csv_rows(data: bytes) -> list[dict[str, str]]:
    """The CSV's rows, or a 4xx naming the line: never a guessed decoding (a Latin-1
    ``müller`` read as ``m\ufffdller`` would be filed as someone else, and complete at
    once as nothing to delete), never a half-read file."""
    if len(data) > BULK_CSV_MAX_BYTES:
        raise PayloadTooLarge(
            f"the CSV is over {BULK_CSV_MAX_BYTES} bytes; split it into several files"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Unprocessable(
            f"line {line}: the CSV is not valid UTF-8 (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8 and upload it again",
            field="file",
        ) from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise Unprocessable(
            f"line {line}: the CSV holds a NUL byte; upload a text CSV file", field="file"
        )
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return list(reader)
    except csv.Error as exc:
        # line_num counts the lines of the rows read whole; the bad one is next.
        raise Unprocessable(
            f"line {reader.line_num + 1}: not a valid CSV row ({exc}); check its quotes and "
            "line ends",
            field="file",
        ) from exc


@router.post(
    "/bulk",
    status_code=status.HTTP_201_CREATED,
    response_model=DeletionRequestsPublic,
    responses={413: {"model": ErrorBody, "description": "A CSV over 5 000 000 bytes"}},
    dependencies=[rate_limit("deletion_requests"), FORM_TEXT],
)
def file_bulk(
    session: SessionDep,
    settings: SettingsDep,
    key: Compliance,
    file: Annotated[
        UploadFile, File(description="CSV: subject_id,legal_basis,requester_reference")
    ],
) -> DeletionRequestsPublic:
    """One request per CSV row; the whole file is refused if any row is invalid."""
    rows = _csv_rows(file.file.read(BULK_CSV_MAX_BYTES + 1))
    if not rows or "subject_id" not in rows[0]:
        raise Unprocessable(
            "the CSV needs a header with subject_id[,legal_basis,requester_reference]", field="file"
        )
    bodies = []
    for number, row in enumerate(rows, start=2):
        try:
            bodies.append(
                DeletionRequestCreate.model_validate(
                    {
                        # A short row has None where a column is missing.
                        "scope": {"subject_ids": [(row.get("subject_id") or "").strip()]},
                        "legal_basis": (row.get("legal_basis") or "gdpr_art17").strip(),
                        "requester_reference": (row.get("requester_reference") or "").strip(),
                    }
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "row"
            raise Unprocessable(f"line {number}: {where}: {first['msg']}", field="file") from exc
    created = [_public(session, _file(session, settings, b, key.id), key) for b in bodies]
    return DeletionRequestsPublic(data=created, count=len(created))


@router.get("", response_model=DeletionRequestsPublic)
def list_requests(
    session: SessionDep,
    settings: SettingsDep,
    key: Reader,
    status_: Annotated[str | None, Query(alias="status", max_length=30)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeletionRequestsPublic:
    rows, next_cursor = repository.page(session, status=status_, cursor=cursor, limit=limit)
    data = [_shown_to(key, settings, _public(session, r, key), r) for r in rows]
    return DeletionRequestsPublic(data=data, count=len(data), next_cursor=next_cursor)


@router.get("/{request_id}", response_model=DeletionRequestPublic, responses=NOT_FOUND)
def get_request(
    request_id: str, session: SessionDep, settings: SettingsDep, key: Reader
) -> DeletionRequestPublic:
    found = _get(session, request_id)
    return _shown_to(key, settings, _public(session, found, key), found)


def _shown_to(
    key: ApiKey, settings: SettingsDep, out: DeletionRequestPublic, request: DeletionRequest
) -> DeletionRequestPublic:
    """Only those who decide on requests (compliance, admin) read an open request's ids in
    clear; viewers and engineers see the salted commitments a closed request keeps."""
    if key.role not in DECIDERS:
        out.scope, out.scope_commitments = redacted_scope(settings, request)
    return out


def _dispatch(session: SessionDep, settings: SettingsDep, jobs: list[Any]) -> None:
    session.commit()
    for job in jobs:
        send_job(session, job.id, job.queue, settings)


@router.get("/{request_id}/timeline", responses=NOT_FOUND)
def timeline(request_id: str, session: SessionDep, key: Reader) -> list[dict[str, Any]]:
    """Every step with who and when, straight from the audit log (with its positions);
    comments and attachments appear as ``note`` (their content for compliance only)."""
    _get(session, request_id)
    notes = timeline_notes(session, request_id, key.role in ("admin", "compliance"))
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.entity_type == "deletion_request", AuditEvent.entity_id == request_id)
        .order_by(AuditEvent.seq)
    )
    return [
        {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "payload": e.payload,
            "hash": e.hash,
            **(
                {"note": notes[note_id]}
                if (
                    note_id := (e.payload or {}).get("comment")
                    or (e.payload or {}).get("attachment")
                )
                in notes
                else {}
            ),
        }
        for e in events
    ]


@router.post(
    "/{request_id}/approve",
    response_model=DeletionRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def approve(
    request_id: str, session: SessionDep, settings: SettingsDep, key: Compliance
) -> DeletionRequestPublic:
    """A second person (not the filer) approves; one unlearning job per affected version."""
    request = _get(session, request_id)
    jobs = flows.approve(session, request, key.id)
    _dispatch(session, settings, jobs)
    return _public(session, request, key)


@router.post(
    "/{request_id}/retry",
    response_model=DeletionRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def retry(
    request_id: str, session: SessionDep, settings: SettingsDep, key: Compliance
) -> DeletionRequestPublic:
    """Run a failed request's failed items again with the model's current policy (after
    changing the policy, or fixing what made a job fail); 409 unless it is ``failed``."""
    if flows.lock_request(session, request_id) is None:
        raise NotFound(f"deletion request {request_id} not found")
    request = _get(session, request_id)
    jobs = flows.retry(session, request, key.id)
    _dispatch(session, settings, jobs)
    return _public(session, request, key)


@router.post(
    "/{request_id}/reject",
    response_model=DeletionRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def reject(
    request_id: str, body: Decision, session: SessionDep, key: Compliance
) -> DeletionRequestPublic:
    request = _get(session, request_id)
    service.reject(session, request, key.id, body.reason)
    return _public(session, request, key)


@router.post(
    "/{request_id}/cancel",
    response_model=DeletionRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def cancel(request_id: str, session: SessionDep, key: Compliance) -> DeletionRequestPublic:
    request = _get(session, request_id)
    service.cancel(session, request, key.id)
    return _public(session, request, key)


@router.post(
    "/{request_id}/extend",
    response_model=DeletionRequestPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def extend(
    request_id: str, body: Decision, session: SessionDep, key: Compliance
) -> DeletionRequestPublic:
    request = _get(session, request_id)
    service.extend(session, request, key.id, body.reason)
    return _public(session, request, key)


@router.post("/{request_id}/advance", response_model=DeletionRequestPublic, responses={**NOT_FOUND})
def advance(
    request_id: str, session: SessionDep, settings: SettingsDep, store: StoreDep, key: Compliance
) -> DeletionRequestPublic:
    """Re-check the request's jobs now, and start any batch whose window has closed
    (workers and the sweeper also do this on their own)."""
    if flows.lock_request(session, request_id) is None:
        raise NotFound(f"deletion request {request_id} not found")
    request = _get(session, request_id)
    # A re-check, not a decision: idempotent from any status (a client polling it may
    # see the request complete between two calls), so never a 409.
    jobs = flows.advance(session, store, settings, request)
    _dispatch(session, settings, jobs + flows.start_batches(session))
    return _public(session, request, key)


@router.get(
    "/{request_id}/certificate",
    responses={
        **NOT_FOUND,
        **CONFLICT,
        200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}},
    },
)
def certificate(
    request_id: str,
    request: Request,
    session: SessionDep,
    _: Reader,
    format: Annotated[
        str,
        Query(
            pattern="^(json|html|pdf)$",
            description="json: the signed document; html and pdf: the same, for people",
        ),
    ] = "json",
) -> Any:
    found = _get(session, request_id)
    if found.certificate is None:
        raise Conflict(
            f"request {request_id} is {found.status}; its certificate is issued on completion"
        )
    document, anchor = found.certificate["document"], found.certificate["anchor"]
    headers = {"X-Audit-Seq": str(anchor["audit_seq"]), "X-Certificate-SHA256": anchor["sha256"]}
    if format == "html":
        return HTMLResponse(render_html(document), headers=headers)
    if format == "pdf":
        headers["Content-Disposition"] = f'attachment; filename="certificate-{request_id}.pdf"'
        return Response(render_pdf(document), media_type="application/pdf", headers=headers)
    # The exact canonical bytes whose sha256 is X-Certificate-SHA256 (RFC 8785 for v2
    # certificates, the older form for v1): a client can hash what it received.
    return Response(canonical_document(document), media_type="application/json", headers=headers)
