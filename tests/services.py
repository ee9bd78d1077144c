"""Real services for tests: a fresh Postgres database, a Redis db, workers, ``wait_for``.

They live in ``bench/services.py`` (the benchmarks start the same services and must not
import the test suite); this module is the tests' name for them.
"""

from __future__ import annotations

from bench.services import (
    ADMIN_KEY,
    CLAIM_KEY,
    PG_ADMIN,
    REDIS,
    REPO,
    WorkerProcess,
    die_with_parent,
    free_port,
    postgres_database,
    redis_database,
    settings_env,
    wait_for,
)

__all__ = [
    "ADMIN_KEY",
    "CLAIM_KEY",
    "PG_ADMIN",
    "REDIS",
    "REPO",
    "WorkerProcess",
    "die_with_parent",
    "free_port",
    "postgres_database",
    "redis_database",
    "settings_env",
    "wait_for",
]
