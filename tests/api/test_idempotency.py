"""The idempotency middleware on its own: replay, conflicting reuse, and an outcome that
could not be stored because the database went away after the answer was sent."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from api.idempotency import IdempotencyMiddleware
from models import IdempotencyRecord


@pytest.fixture
def middleware(tmp_path: Path) -> IdempotencyMiddleware:
    engine = create_engine(f"sqlite:///{tmp_path / 'idem.db'}")
    IdempotencyRecord.__table__.create(engine)  # type: ignore[attr-defined]
    calls = count(1)
    app = FastAPI()

    @app.post("/things")
    def make_thing(body: dict[str, str]) -> dict[str, object]:
        return {"n": next(calls), **body}

    return IdempotencyMiddleware(app, sessionmaker(bind=engine))


def test_same_key_replays_and_other_body_is_refused(middleware: IdempotencyMiddleware) -> None:
    client = TestClient(middleware)
    first = client.post("/things", json={"a": "1"}, headers={"Idempotency-Key": "k1"})
    again = client.post("/things", json={"a": "1"}, headers={"Idempotency-Key": "k1"})
    assert first.json() == again.json() == {"n": 1, "a": "1"}
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/things", json={"a": "2"}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422 and "different request" in other.json()["detail"]


def test_outcome_stored_after_the_database_returns(
    middleware: IdempotencyMiddleware, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(middleware)
    real_finish = middleware._finish

    def database_gone(*args: object) -> None:
        raise OperationalError("UPDATE idempotency_records", {}, Exception("connection lost"))

    monkeypatch.setattr(middleware, "_finish", database_gone)
    first = client.post("/things", json={"a": "1"}, headers={"Idempotency-Key": "k2"})
    assert first.status_code == 200  # the client has its answer even though storing failed
    assert len(middleware._unfinished) == 1

    # The database is back: the queued outcome is written before the next claim.
    monkeypatch.setattr(middleware, "_finish", real_finish)
    retry = client.post("/things", json={"a": "1"}, headers={"Idempotency-Key": "k2"})
    assert retry.status_code == 200 and retry.json() == first.json()  # replayed, not 409
    assert retry.headers["idempotent-replayed"] == "true"
    assert middleware._unfinished == []


def test_unfinished_outcomes_survive_a_failed_flush(
    middleware: IdempotencyMiddleware, monkeypatch: pytest.MonkeyPatch
) -> None:
    middleware._unfinished = [("p", "a", 201, b"{}"), ("p", "b", 201, b"{}")]

    def database_gone(*args: object) -> None:
        raise OperationalError("UPDATE idempotency_records", {}, Exception("connection lost"))

    monkeypatch.setattr(middleware, "_finish", database_gone)
    with pytest.raises(OperationalError):
        middleware._flush_unfinished()
    assert [item[1] for item in middleware._unfinished] == ["a", "b"]
