"""The CLI's audit commands read a real, migrated audit database: the same fixtures as the
audit log's own tests (``tests/core/audit/conftest.py``), on SQLite and on PostgreSQL."""

from __future__ import annotations

from tests.core.audit.conftest import audit_db, pg_template, sqlite_template

__all__ = ["audit_db", "pg_template", "sqlite_template"]
