"""Edit the audit tables the way an attacker with database access would: around the
append-only triggers (a Postgres superuser's ``session_replication_role = replica``; on
SQLite, dropping the trigger first)."""

from __future__ import annotations

from sqlalchemy import Engine, text


def raw_sql(engine: Engine, *statements: str, **params: object) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            for table in ("audit_events", "audit_checkpoints"):
                for verb in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))
        for statement in statements:
            conn.execute(text(statement), params)
