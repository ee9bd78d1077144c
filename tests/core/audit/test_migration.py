"""Migration 0002 runs both ways on SQLite and on PostgreSQL, triggers included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from core import migrate
from core.audit import log
from core.db import make_engine
from core.settings import Settings
from tests.services import postgres_database


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
    else:
        with postgres_database() as url:
            yield url


def _state(url: str) -> tuple[set[str], set[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if engine.dialect.name == "postgresql":
                sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
                extra = "SELECT proname FROM pg_proc WHERE proname = 'audit_refuse_change'"
                triggers = {r[0] for r in conn.execute(text(sql))}
                triggers |= {r[0] for r in conn.execute(text(extra))}
            else:
                sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                triggers = {r[0] for r in conn.execute(text(sql))}
        # Only ours: later migrations may add triggers of their own.
        return tables, {t for t in triggers if "audit" in t}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    settings = Settings(env="test", database_url=fresh_url)
    migrate.upgrade(settings)
    tables, triggers = _state(fresh_url)
    assert {"audit_events", "audit_checkpoints"} <= tables
    if fresh_url.startswith("sqlite"):
        assert triggers == {
            "audit_events_no_update",
            "audit_events_no_delete",
            "audit_checkpoints_no_update",
            "audit_checkpoints_no_delete",
        }
    else:
        assert triggers == {
            "audit_events_append_only",
            "audit_events_no_truncate",
            "audit_checkpoints_append_only",
            "audit_checkpoints_no_truncate",
            "audit_refuse_change",
        }

    # A log with events in it still downgrades (the triggers go first).
    engine = make_engine(fresh_url)
    with Session(engine) as session, session.begin():
        log.append(session, "system", "test.event", "test", "t_1")
    engine.dispose()
    migrate.downgrade(settings, "0001")
    tables, triggers = _state(fresh_url)
    assert not {"audit_events", "audit_checkpoints"} & tables and not triggers
    assert "jobs" in tables  # the revision below is untouched

    migrate.upgrade(settings)
    tables, triggers = _state(fresh_url)
    assert {"audit_events", "audit_checkpoints"} <= tables and triggers
    migrate.downgrade(settings, "base")
    assert _state(fresh_url)[0] <= {"alembic_version"}
