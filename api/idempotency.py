"""Idempotency-Key for every POST (IETF draft semantics), as plain ASGI middleware.

Same key and body → the stored response again; same key, other body → 422; the first
request still in flight → 409. Responses ≥ 500 (and auth/rate-limit refusals) are not
stored, so the client can retry them with the same key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import IdempotencyRecord
from models.base import utcnow

log = logging.getLogger("expunge.idempotency")

NOT_STORED = {401, 403, 409, 429}
ABANDONED_AFTER = timedelta(minutes=10)
MAX_KEY_LENGTH = 255


async def _send_json(send: Send, status: int, body: Any, replayed: bool = False) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, session_factory: sessionmaker[Session]) -> None:
        self.app = app
        self.session_factory = session_factory
        # Outcomes that could not be stored (the database went away after the answer was
        # sent). Left alone, their records would read "still running" for ten minutes and
        # a client retrying its 503 with the same key would get 409s; they are written
        # before this process claims any other key.
        self._unfinished: list[tuple[str, str, int, bytes]] = []
        self._unfinished_lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        key = headers.get(b"idempotency-key")
        if key is None:
            await self.app(scope, receive, send)
            return
        key_text = key.decode("latin-1").strip()
        if not key_text or len(key_text) > MAX_KEY_LENGTH:
            await _send_json(
                send,
                400,
                {"detail": "Idempotency-Key must be 1-255 characters", "code": "bad_request"},
            )
            return

        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        request_hash = hashlib.sha256(
            scope["method"].encode()
            + b" "
            + scope["path"].encode()
            + b"?"
            + scope.get("query_string", b"")
            + b"\n"
            + body
        ).hexdigest()
        principal = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()

        verdict = await run_in_threadpool(self._claim, principal, key_text, request_hash)
        if verdict is not None:
            status, payload, replayed = verdict
            await _send_json(send, status, payload, replayed)
            return

        sent_body = False

        async def replay_receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status_code = 500
        response_chunks: list[bytes] = []

        async def capture_send(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            elif message["type"] == "http.response.body":
                response_chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            await run_in_threadpool(
                self._finish_or_defer, principal, key_text, status_code, b"".join(response_chunks)
            )

    def _finish_or_defer(self, principal: str, key: str, status_code: int, body: bytes) -> None:
        try:
            self._finish(principal, key, status_code, body)
        except SQLAlchemyError as exc:
            log.warning("could not store the outcome of idempotency key %r yet: %s", key, exc)
            with self._unfinished_lock:
                self._unfinished.append((principal, key, status_code, body))

    def _flush_unfinished(self) -> None:
        with self._unfinished_lock:
            pending, self._unfinished = self._unfinished, []
        for n, item in enumerate(pending):
            try:
                self._finish(*item)
            except SQLAlchemyError:
                with self._unfinished_lock:
                    self._unfinished[:0] = pending[n:]
                raise

    def _claim(self, principal: str, key: str, request_hash: str) -> tuple[int, Any, bool] | None:
        if self._unfinished:
            self._flush_unfinished()
        with self.session_factory() as session:
            try:
                session.add(
                    IdempotencyRecord(principal=principal, key=key, request_hash=request_hash)
                )
                session.commit()
                return None
            except IntegrityError:
                session.rollback()
            record = session.get(IdempotencyRecord, (principal, key))
            if record is None:  # deleted between our insert and read: the client may retry
                return (
                    409,
                    {
                        "detail": "request with this Idempotency-Key is being retried; try again",
                        "code": "conflict",
                    },
                    False,
                )
            if record.request_hash != request_hash:
                return (
                    422,
                    {
                        "detail": "Idempotency-Key was already used with a different request; "
                        "use a new key for a new request",
                        "code": "idempotency_key_reused",
                    },
                    False,
                )
            if record.status_code is None:
                if record.created_at < utcnow() - ABANDONED_AFTER:
                    taken = session.execute(
                        update(IdempotencyRecord)
                        .where(
                            IdempotencyRecord.principal == principal,
                            IdempotencyRecord.key == key,
                            IdempotencyRecord.status_code.is_(None),
                            IdempotencyRecord.created_at == record.created_at,
                        )
                        .values(created_at=utcnow())
                    )
                    session.commit()
                    if taken.rowcount:
                        return None
                return (
                    409,
                    {
                        "detail": "the first request with this Idempotency-Key is still running",
                        "code": "conflict",
                    },
                    False,
                )
            return record.status_code, record.response_body, True

    def _finish(self, principal: str, key: str, status_code: int, body: bytes) -> None:
        with self.session_factory() as session:
            match = (IdempotencyRecord.principal == principal, IdempotencyRecord.key == key)
            payload: Any = None
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                status_code = 500  # not JSON: do not pretend we can replay it
            if status_code >= 500 or status_code in NOT_STORED:
                session.execute(delete(IdempotencyRecord).where(*match))
            else:
                session.execute(
                    update(IdempotencyRecord)
                    .where(*match)
                    .values(status_code=status_code, response_body=payload)
                )
            session.commit()
