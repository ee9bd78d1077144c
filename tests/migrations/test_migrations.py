"""Migrations run both ways on SQLite and PostgreSQL, and match the ORM exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core import migrate
from core.db import make_engine
from core.settings import Settings
from models import Base
from tests.services import postgres_database


def _round_trip_and_diff(url: str, home) -> list:
    settings = Settings(home=home, database_url=url)
    migrate.upgrade(settings)
    migrate.downgrade(settings, "base")
    migrate.upgrade(settings)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade_matches_models(backend, tmp_path) -> None:
    if backend == "sqlite":
        assert _round_trip_and_diff(f"sqlite:///{tmp_path / 'm.db'}", tmp_path) == []
    else:
        with postgres_database() as url:
            assert _round_trip_and_diff(url, tmp_path) == []
