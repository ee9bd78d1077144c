"""Comments and attachments on deletion requests: the case file around the workflow.

Both may hold personal data, so only ``admin`` and ``compliance`` read or write them, and
the audit log records that one was added (id, size, digest), never its content. Both are
allowed at any status, completed and cancelled included: the record goes on after the
erasure (a regulator's follow-up, the reply sent to the person).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile, status
from fastapi.responses import Response
from sqlalchemy import select

from api.deletion_requests.schemas import (
    AttachmentPublic,
    AttachmentsPublic,
    CommentCreate,
    CommentPublic,
    CommentsPublic,
)
from api.deps import Compliance, SessionDep, SettingsDep, StoreDep
from api.ratelimit import rate_limit
from api.schemas import ERRORS, FORM_TEXT, NOT_FOUND
from core.deletion import service
from core.errors import NotFound
from models.deletion import DeletionAttachment, DeletionComment, DeletionRequest

router = APIRouter(prefix="/deletion-requests", tags=["deletion-requests"], responses=ERRORS)
TOO_LARGE = {413: {"description": "Over the attachment size limit"}}


def _request(session: SessionDep, request_id: str) -> DeletionRequest:
    found = session.get(DeletionRequest, request_id)
    if found is None:
        raise NotFound(f"deletion request {request_id} not found")
    return found


@router.post(
    "/{request_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=CommentPublic,
    responses=NOT_FOUND,
)
def add_comment(
    request_id: str, body: CommentCreate, session: SessionDep, key: Compliance
) -> CommentPublic:
    comment = service.add_comment(session, _request(session, request_id), key.id, body.text)
    return CommentPublic.model_validate(comment)


@router.get("/{request_id}/comments", response_model=CommentsPublic, responses=NOT_FOUND)
def list_comments(request_id: str, session: SessionDep, _: Compliance) -> CommentsPublic:
    _request(session, request_id)
    rows = session.scalars(
        select(DeletionComment)
        .where(DeletionComment.request_id == request_id)
        .order_by(DeletionComment.id)
    ).all()
    return CommentsPublic(data=[CommentPublic.model_validate(r) for r in rows], count=len(rows))


@router.post(
    "/{request_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentPublic,
    responses={**NOT_FOUND, **TOO_LARGE},
    dependencies=[rate_limit("uploads"), FORM_TEXT],
)
def add_attachment(
    request_id: str,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    key: Compliance,
    file: Annotated[UploadFile, File(description="PDF, PNG, JPEG, plain text, CSV or JSON")],
) -> AttachmentPublic:
    request = _request(session, request_id)
    data = file.file.read(settings.max_attachment_bytes + 1)
    attachment = service.add_attachment(
        session,
        store,
        settings,
        request,
        key.id,
        filename=file.filename or "attachment",
        content_type=file.content_type or "",
        data=data,
    )
    return AttachmentPublic.model_validate(attachment)


@router.get("/{request_id}/attachments", response_model=AttachmentsPublic, responses=NOT_FOUND)
def list_attachments(request_id: str, session: SessionDep, _: Compliance) -> AttachmentsPublic:
    _request(session, request_id)
    rows = session.scalars(
        select(DeletionAttachment)
        .where(DeletionAttachment.request_id == request_id)
        .order_by(DeletionAttachment.id)
    ).all()
    return AttachmentsPublic(
        data=[AttachmentPublic.model_validate(r) for r in rows], count=len(rows)
    )


@router.get(
    "/{request_id}/attachments/{attachment_id}",
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}}}},
)
def download_attachment(
    request_id: str, attachment_id: str, session: SessionDep, store: StoreDep, _: Compliance
) -> Response:
    """The file as uploaded, always as a download (never rendered inline)."""
    found = session.get(DeletionAttachment, attachment_id)
    if found is None or found.request_id != request_id:
        raise NotFound(f"attachment {attachment_id} of request {request_id} not found")
    return Response(
        store.get_bytes(found.object_key),
        media_type=found.content_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "X-Content-Type-Options": "nosniff",
            "X-Content-SHA256": found.sha256,
        },
    )


def timeline_notes(
    session: SessionDep, request_id: str, with_content: bool
) -> dict[str, dict[str, Any]]:
    """Comments and attachments by id, for the timeline; content only for compliance."""
    notes: dict[str, dict[str, Any]] = {}
    for c in session.scalars(
        select(DeletionComment).where(DeletionComment.request_id == request_id)
    ):
        notes[c.id] = {"kind": "comment", "id": c.id, "author": c.author}
        if with_content:
            notes[c.id]["text"] = c.text
    for a in session.scalars(
        select(DeletionAttachment).where(DeletionAttachment.request_id == request_id)
    ):
        notes[a.id] = {
            "kind": "attachment",
            "id": a.id,
            "author": a.uploaded_by,
            "content_type": a.content_type,
            "size_bytes": a.size_bytes,
        }
        if with_content:
            notes[a.id]["filename"] = a.filename
    return notes
