"""Single-entity operations on a deletion request (reject, cancel, extend, comments,
attachments), which never commit, and the entry points that own a transaction for the
workers and the sweeper (the API's routes own theirs; commit first, then dispatch, as
everywhere). Multi-step work (file, approve, advance, close) is in ``flows``; queries
are in ``repository``; the states an action needs are in ``states``."""

from __future__ import annotations

import hashlib

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from core.deletion import flows, repository
from core.deletion.redact import redact_due
from core.deletion.states import check_action, move
from core.errors import Conflict, PayloadTooLarge, Unprocessable
from core.queue import send_job
from core.settings import Settings
from core.storage import ObjectStore
from models import Job
from models.base import new_id, utcnow
from models.deletion import DeletionAttachment, DeletionComment, DeletionItem, DeletionRequest


def reject(session: Session, request: DeletionRequest, actor: str, reason: str) -> None:
    """Refuse a request not yet approved; the versions it tainted are released."""
    check_action(request, "reject")
    flows.release(session, request)
    move(request, "rejected")
    request.reason = reason
    # The reason is free text that may name the person: the row keeps it (redacted with
    # the ids later), the log only its length, as for comments.
    flows.emit(session, request, actor, "rejected", reason_length=len(reason))


def cancel(session: Session, request: DeletionRequest, actor: str) -> None:
    """Withdraw a request not yet approved; the versions it tainted are released."""
    check_action(request, "cancel")
    flows.release(session, request)
    move(request, "cancelled")
    flows.emit(session, request, actor, "cancelled")


def extend(session: Session, request: DeletionRequest, actor: str, reason: str) -> None:
    """The one extension of the deadline the law allows, with the reason told to the
    data subject."""
    check_action(request, "extend")
    if request.extended:
        raise Conflict("this request was already extended once; the law allows one extension")
    if not reason.strip():
        raise Unprocessable(
            "an extension needs a reason (it is told to the data subject)", field="reason"
        )
    request.due_at = request.due_at + flows.DEADLINES[request.legal_basis][1]
    request.extended, request.extension_reason = True, reason
    flows.emit(session, request, actor, "extended", new_due_at=request.due_at.isoformat())


# --------------------------------------------------------------------------- notes

# Attachments are evidence (an ID check, the requester's letter): a short list of plain
# formats, each checked against its leading bytes, so nothing active is ever served back.
ATTACHMENT_TYPES: dict[str, bytes | None] = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "text/plain": None,
    "text/csv": None,
    "application/json": None,
}


def add_comment(
    session: Session, request: DeletionRequest, actor: str, text: str
) -> DeletionComment:
    """A note on the request, at any status (the record continues after completion).

    The text may name the person, so the audit event holds only its id and length.
    """
    if not text.strip():
        raise Unprocessable("a comment needs some text", field="text")
    comment = DeletionComment(
        id=new_id("drc"), request_id=request.id, author=actor, text=text, created_at=utcnow()
    )
    session.add(comment)
    session.flush()
    flows.emit(session, request, actor, "comment_added", comment=comment.id, length=len(text))
    return comment


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or "attachment"
    cleaned = "".join(c if c.isalnum() or c in "._- " else "_" for c in base)
    return cleaned[:200] or "attachment"


def add_attachment(
    session: Session,
    store: ObjectStore,
    settings: Settings,
    request: DeletionRequest,
    actor: str,
    *,
    filename: str,
    content_type: str,
    data: bytes,
) -> DeletionAttachment:
    """Store a small file under the request's prefix; kept for good, as evidence."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in ATTACHMENT_TYPES:
        raise Unprocessable(
            f"attachments may be {', '.join(ATTACHMENT_TYPES)}; not {kind or 'untyped'}",
            field="file",
        )
    if not data:
        raise Unprocessable("the attachment is empty", field="file")
    if len(data) > settings.max_attachment_bytes:
        raise PayloadTooLarge(
            f"attachments are limited to {settings.max_attachment_bytes} bytes", field="file"
        )
    magic = ATTACHMENT_TYPES[kind]
    if magic is not None and not data.startswith(magic):
        raise Unprocessable(f"the file's content is not {kind}", field="file")
    if magic is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Unprocessable(f"a {kind} attachment must be UTF-8 text", field="file") from exc
        if "\x00" in text:
            raise Unprocessable(f"a {kind} attachment must not contain NUL bytes", field="file")
    attachment_id = new_id("dra")
    # The key names no file: a filename may itself name the person.
    key = f"deletion-requests/{request.id}/attachments/{attachment_id}"
    store.put_bytes(key, data, content_type=kind)
    attachment = DeletionAttachment(
        id=attachment_id,
        request_id=request.id,
        filename=safe_filename(filename),
        content_type=kind,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        object_key=key,
        uploaded_by=actor,
        created_at=utcnow(),
    )
    session.add(attachment)
    session.flush()
    flows.emit(
        session,
        request,
        actor,
        "attachment_added",
        attachment=attachment.id,
        sha256=attachment.sha256,
        size_bytes=attachment.size_bytes,
        content_type=kind,
    )
    return attachment


# ------------------------------------------------------------ transactions (workers)


def advance_request(
    factory: sessionmaker[Session], store: ObjectStore, settings: Settings, request_id: str
) -> None:
    with factory() as session:
        request = flows.lock_request(session, request_id)
        if request is None:
            return
        jobs = flows.advance(session, store, settings, request)
        session.commit()
        for job in jobs:
            send_job(session, job.id, job.queue, settings)


def start_batches(factory: sessionmaker[Session], settings: Settings) -> None:
    """Start the runs of batches whose window has closed (see ``flows.start_batches``)."""
    with factory() as session:
        if session.get_bind().dialect.name == "sqlite":
            # Postgres skips rows another caller holds (FOR UPDATE SKIP LOCKED); SQLite
            # has no row locks, so take its write lock before reading the waiting items.
            session.execute(
                update(DeletionItem)
                .where(DeletionItem.state == "waiting")
                .values(state=DeletionItem.state)
                .execution_options(synchronize_session=False)
            )
        jobs = flows.start_batches(session)
        session.commit()
        for job in jobs:
            send_job(session, job.id, job.queue, settings)


def advance_for_job(
    factory: sessionmaker[Session], store: ObjectStore, settings: Settings, job_id: str
) -> None:
    """A workflow job finished: move on every request it served, then any due batch."""
    with factory() as session:
        job = session.get(Job, job_id)
        spec = (job.spec or {}) if job else {}
    request_ids = spec.get("deletion_request_ids") or [spec.get("deletion_request_id")]
    for request_id in [r for r in request_ids if r]:
        advance_request(factory, store, settings, request_id)
    if len(request_ids) > 1:
        start_batches(factory, settings)


def advance_all(factory: sessionmaker[Session], store: ObjectStore, settings: Settings) -> None:
    with factory() as session:
        ids = repository.in_progress_ids(session)
    for request_id in ids:
        advance_request(factory, store, settings, request_id)
    start_batches(factory, settings)
    # Rejected and cancelled requests past their retention lose their ids in clear.
    redact_due(factory, settings)
