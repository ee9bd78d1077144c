"""A fresh, migrated audit database per test, on SQLite and on PostgreSQL.

Migrating once and copying (a file on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
Postgres) keeps a fresh empty log per test cheap.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core import migrate
from core.db import make_engine
from core.settings import Settings
from tests.services import PG_ADMIN, postgres_database


@dataclass
class AuditDB:
    backend: str
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audit-template") / "template.db"
    settings = Settings(env="test", home=path.parent, database_url=f"sqlite:///{path}")
    migrate.upgrade(settings)
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    with postgres_database() as url:
        migrate.upgrade(Settings(env="test", database_url=url))
        yield url.rsplit("/", 1)[1]


def _pg_copy(template: str) -> Iterator[str]:
    name = f"expunge_audit_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def audit_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditDB]:
    """An empty, migrated database; every test that takes it runs on both backends."""
    if request.param == "sqlite":
        path = tmp_path / "audit.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        urls: Iterator[str] = iter([f"sqlite:///{path}"])
    else:
        urls = _pg_copy(request.getfixturevalue("pg_template"))
    url = next(urls)
    settings = Settings(env="test", home=tmp_path / "home", database_url=url)
    engine = make_engine(url)
    try:
        yield AuditDB(request.param, settings, engine, sessionmaker(engine, expire_on_commit=False))
    finally:
        engine.dispose()
        next(urls, None)  # drops the Postgres copy
