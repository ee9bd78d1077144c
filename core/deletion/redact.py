"""Redaction: once a request is closed, its subject or sample ids exist nowhere in clear.

While a request is open its ids are needed (to find the samples, to build the forget set of
each run). When it closes they are replaced, everywhere Expunge wrote them, by the salted
commitment ``commit_subject(id, salt)`` the certificate and the audit log already use:

- the request row: ``scope`` keeps only its shape, ``scope_commitments`` the commitments;
- its items' history and verdicts, and its comments (free text a person wrote: an id
  written in it as a word is replaced; the rest of the note is the record and stays);
- every job whose params, spec, metrics, artifacts or error name an id (the request's own
  unlearning runs, and any evaluate or retrain job someone ran on the same ids), and those
  jobs' events (state, progress, log lines);
- a language model's answers to the forgotten people's questions, before and after, that
  its unlearning runs keep for the request page (``forget_answers``): text about the
  person, not ids, so it is blanked to its count (unless another open request shares
  the run: then that one's close does it);
- webhook deliveries (payload and last error), and the idempotency store's saved
  responses (a filed request's response echoes its scope; the request's digest is
  salted, so a replay of that request with the same key is refused rather than answered);
- for a sample-id request, the removed sample rows' ``sample_id`` (a subject request's
  rows already carry the commitment in place of ``subject_id``: ``purge.delete_samples``).

A completed request is redacted in the transaction that closes it (after its certificate,
which is built from commitments). A rejected or cancelled request keeps its ids for
``Settings.closed_request_retention_seconds`` (someone may refile it), then the sweeper
redacts it. Not rewritten: the audit log (it never holds ids: only counts and
commitments), and attachments, which are the evidence of the request (the requester's
letter) kept as the compliance record. A concept request's labels are not personal data.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, Text, cast, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from core.audit.events import commit_subject, subject_salt
from core.settings import Settings
from models import Job, Sample
from models.audit import AuditEvent
from models.base import utcnow
from models.deletion import OPEN_STATUSES, DeletionComment, DeletionItem, DeletionRequest
from models.idempotency import IdempotencyRecord
from models.jobs import JobEvent
from models.webhooks import WebhookDelivery

log = logging.getLogger("expunge.deletion")

PERSONAL_KINDS = ("subject_ids", "sample_ids")
CLOSED_AFTER_RETENTION = ("rejected", "cancelled")
_CHUNK = 100  # ids per SQL search, so a 10,000-subject request stays a few queries


class Redactor:
    """Replaces a set of ids by their commitments inside JSON values and text.

    A JSON string equal to an id becomes its commitment; inside longer text (a log line,
    an error, a comment) an id is replaced where it stands as a word of its own, so the
    id ``s1`` never rewrites ``s10`` or ``versions1``.
    """

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        ids = sorted(mapping, key=len, reverse=True)  # longest first: "a-1" before "a"
        self._pattern = (
            re.compile(
                r"(?<![\w.@-])(" + "|".join(re.escape(i) for i in ids) + r")(?![\w@-]|\.\w)"
            )
            if ids
            else None
        )

    def text(self, value: str) -> str:
        if value in self.mapping:
            return self.mapping[value]
        if self._pattern is None:
            return value
        return self._pattern.sub(lambda m: self.mapping[m.group(1)], value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        return value


def commitments_for(settings: Settings, values: Iterable[Any]) -> dict[str, str]:
    """id → salted commitment, as the certificate and the audit log write them."""
    salt = subject_salt(settings)
    return {str(v): commit_subject(str(v), salt) for v in values}


def is_redacted(request: DeletionRequest) -> bool:
    return bool((request.scope or {}).get("redacted"))


def redacted_scope(
    settings: Settings, request: DeletionRequest
) -> tuple[dict[str, Any], list[str]]:
    """(scope, commitments) as a closed request shows them, for an open one: what readers
    who do not decide on requests (viewers, engineers) are shown."""
    kind = request.scope_kind
    if kind not in PERSONAL_KINDS or is_redacted(request):
        return request.scope, request.scope_commitments
    values = (request.scope or {}).get(kind) or []
    commitments = sorted(set(commitments_for(settings, values).values()))
    scope = {**(request.scope or {}), kind: [], "redacted": True, "count": len(values)}
    return scope, commitments


def _needles(value: str) -> set[str]:
    """The forms an id takes in storage: as is (text), JSON-escaped (JSONB text) and
    ASCII-escaped (SQLite's JSON)."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def _matching(
    session: Session,
    entity: type,
    columns: list[InstrumentedAttribute[Any]],
    ids: list[str],
    *where: Any,
) -> list[Any]:
    """Rows of ``entity`` (filtered by ``where``) where any of ``columns`` (JSON or text)
    holds any of ``ids``."""
    found: dict[int, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        conditions = []
        for column in columns:
            as_text = column if isinstance(column.type, String) else cast(column, Text)
            for value in chunk:
                conditions.extend(as_text.contains(n, autoescape=True) for n in _needles(value))
        for row in session.scalars(select(entity).where(*where, or_(*conditions))):
            found[id(row)] = row
    return list(found.values())


def _scrub(row: Any, names: list[str], redactor: Redactor) -> None:
    for name in names:
        current = getattr(row, name)
        if current is None:
            continue
        cleaned = redactor.value(current)
        if cleaned != current:
            setattr(row, name, cleaned)


def redact_request(session: Session, settings: Settings, request: DeletionRequest) -> int:
    """Replace every copy of the request's ids by their commitments; returns the number
    of rows rewritten (0 when there is nothing personal, or it was done before)."""
    kind = request.scope_kind
    if kind not in PERSONAL_KINDS or is_redacted(request):
        return 0
    mapping = commitments_for(settings, (request.scope or {}).get(kind) or [])
    redactor = Redactor(mapping)
    ids = list(mapping)
    touched = 0

    request.scope_commitments = sorted(set(mapping.values()))
    request.scope = {
        **{k: v for k, v in (request.scope or {}).items() if k != kind},
        kind: [],
        "redacted": True,
        "count": len(mapping),
    }
    for name in ("blast_radius", "plan", "reason", "extension_reason"):
        _scrub(request, [name], redactor)
    touched += 1

    items = session.scalars(select(DeletionItem).where(DeletionItem.request_id == request.id))
    for item in items:
        _scrub(item, ["verdict", "history"], redactor)
        touched += 1
    comments = session.scalars(
        select(DeletionComment).where(DeletionComment.request_id == request.id)
    )
    for comment in comments:
        _scrub(comment, ["text"], redactor)

    # An id another request still holds (open, or failed and retriable) stays in clear in
    # the copies outside this request (a shared run's spec) until that one closes too.
    held = _held_elsewhere(session, request, set(mapping))
    if not held:
        touched += _blank_answers(session, _request_jobs(session, request.id))
    if held:
        mapping = {k: v for k, v in mapping.items() if k not in held}
        redactor, ids = Redactor(mapping), [i for i in ids if i not in held]
    if not ids:
        return touched
    job_columns = [Job.params, Job.spec, Job.metrics, Job.artifacts, Job.error]
    jobs = _matching(session, Job, job_columns, ids)
    job_ids = {job.id for job in jobs} | _request_jobs(session, request.id)
    for job in jobs:
        _scrub(job, ["params", "spec", "metrics", "artifacts", "error"], redactor)
        touched += 1
    ordered = sorted(job_ids)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        for event in _matching(session, JobEvent, [JobEvent.data], ids, JobEvent.job_id.in_(chunk)):
            _scrub(event, ["data"], redactor)
            touched += 1
    for delivery in _matching(
        session, WebhookDelivery, [WebhookDelivery.payload, WebhookDelivery.last_error], ids
    ):
        _scrub(delivery, ["payload", "last_error"], redactor)
        touched += 1
    salt = subject_salt(settings)
    for record in _matching(session, IdempotencyRecord, [IdempotencyRecord.response_body], ids):
        _scrub(record, ["response_body"], redactor)
        # The request hash is an unsalted digest of a body naming the ids: whoever guesses
        # the body could confirm it. Salted, it only stops a replay of the same request.
        record.request_hash = hashlib.sha256(salt + record.request_hash.encode()).hexdigest()
        touched += 1
    if kind == "sample_ids":
        # The rows stay (lineage counts positions) but no longer carry the named id.
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for sample in session.scalars(
                select(Sample).where(
                    Sample.sample_id.in_(chunk), Sample.removed_in_version.is_not(None)
                )
            ):
                sample.sample_id = mapping[sample.sample_id]
                touched += 1
    session.flush()
    log.info("request %s: ids replaced by commitments in %d rows", request.id, touched)
    return touched


def blank_answers(answers: Any) -> Any:
    """A run's ``forget_answers`` (a language model's answers to the forgotten people's
    questions, before and after: their personal data as text, not ids) as a closed
    request keeps them: how many there were, no text."""
    if not isinstance(answers, list):
        return answers
    return {"redacted": True, "count": len(answers)}


def _blank_answers(session: Session, job_ids: set[str]) -> int:
    """Blank the before/after answers the request's unlearning runs stored; returns the
    number of jobs rewritten."""
    touched = 0
    for job_id in sorted(job_ids):
        job = session.get(Job, job_id)
        metrics = job.metrics if job is not None else None
        if isinstance(metrics, dict) and isinstance(metrics.get("forget_answers"), list):
            job.metrics = {**metrics, "forget_answers": blank_answers(metrics["forget_answers"])}
            touched += 1
    return touched


def _held_elsewhere(session: Session, request: DeletionRequest, mine: set[str]) -> set[str]:
    """The ids of this request (``mine``) that other requests still need in clear."""
    held: set[str] = set()
    for scope in session.scalars(
        select(DeletionRequest.scope).where(
            DeletionRequest.id != request.id,
            DeletionRequest.scope_kind == request.scope_kind,
            DeletionRequest.status.in_((*OPEN_STATUSES, "failed")),
        )
    ):
        held.update(str(v) for v in (scope or {}).get(request.scope_kind) or [] if str(v) in mine)
    return held


def _request_jobs(session: Session, request_id: str) -> set[str]:
    """Every job the request's items ran (the current one and those in their history)."""
    found: set[str] = set()
    for job_id, history in session.execute(
        select(DeletionItem.job_id, DeletionItem.history).where(
            DeletionItem.request_id == request_id
        )
    ):
        if job_id:
            found.add(job_id)
        found.update(h["job_id"] for h in history or [] if h.get("job_id"))
    return found


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def redact_due(factory: sessionmaker[Session], settings: Settings) -> list[str]:
    """Redact rejected and cancelled requests whose retention period has passed (the
    sweeper calls this); returns their ids."""
    cutoff = utcnow() - timedelta(seconds=settings.closed_request_retention_seconds)
    actions = [f"deletion_request.{status}" for status in CLOSED_AFTER_RETENTION]
    with factory() as session:
        # Few rows: closed requests not yet redacted (status is indexed); only for those
        # is the log asked when they were closed.
        waiting = list(
            session.scalars(
                select(DeletionRequest.id).where(
                    DeletionRequest.status.in_(CLOSED_AFTER_RETENTION),
                    DeletionRequest.scope_kind.in_(PERSONAL_KINDS),
                    or_(
                        DeletionRequest.scope_commitments.is_(None),
                        cast(DeletionRequest.scope_commitments, Text).in_(("[]", "null")),
                    ),
                )
            )
        )
        due: list[str] = []
        for start in range(0, len(waiting), _CHUNK):
            chunk = waiting[start : start + _CHUNK]
            due.extend(
                entity_id
                for entity_id, closed_at in session.execute(
                    select(AuditEvent.entity_id, func.max(AuditEvent.at))
                    .where(
                        AuditEvent.entity_type == "deletion_request",
                        AuditEvent.entity_id.in_(chunk),
                        AuditEvent.action.in_(actions),
                    )
                    .group_by(AuditEvent.entity_id)
                )
                if closed_at is not None and _aware(closed_at) <= cutoff
            )
    from core.deletion.flows import lock_request

    done = []
    for request_id in due:
        with factory() as session:
            request = lock_request(session, request_id)
            if (
                request is None
                or request.status not in CLOSED_AFTER_RETENTION
                or is_redacted(request)
            ):
                continue
            redact_request(session, settings, request)
            session.commit()
            done.append(request_id)
    return done
