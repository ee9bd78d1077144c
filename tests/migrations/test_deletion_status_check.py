"""The database holds a deletion request's status to the declared states (migration 0005,
a CHECK constraint), on SQLite and PostgreSQL, and the downgrade removes it again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion.states import STATUSES
from core.settings import Settings
from models.base import utcnow
from models.deletion import DeletionRequest
from tests.services import postgres_database


def _insert(url: str, status: str) -> None:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            now = utcnow()
            session.add(
                DeletionRequest(
                    id=f"dr_{status}"[:40],
                    status=status,
                    scope={"subject_ids": ["a"]},
                    scope_kind="subject_ids",
                    legal_basis="other",
                    received_at=now,
                    due_at=now + timedelta(days=30),
                )
            )
            session.commit()
    finally:
        engine.dispose()


def _check(url: str, home) -> None:
    settings = Settings(home=home, database_url=url)
    migrate.upgrade(settings)
    for status in STATUSES:
        _insert(url, status)
    with pytest.raises(IntegrityError, match="(?i)check"):
        _insert(url, "almost_done")
    # Reversible: without the constraint the same row goes in.
    migrate.downgrade(settings, "0004")
    _insert(url, "almost_done")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM deletion_requests WHERE status = 'almost_done'"))
    finally:
        engine.dispose()
    migrate.upgrade(settings)
    with pytest.raises(IntegrityError, match="(?i)check"):
        _insert(url, "almost_done")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_status_outside_the_states_is_refused(backend, tmp_path) -> None:
    if backend == "sqlite":
        _check(f"sqlite:///{tmp_path / 's.db'}", tmp_path)
    else:
        with postgres_database() as url:
            _check(url, tmp_path)
