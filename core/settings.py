"""Settings for every process, read from the environment (prefix ``EXPUNGE_``).

Each backend is chosen by a URL so one code path serves both deployments: the embedded
default (SQLite, a local folder, a SQLite-backed Celery broker, all under
``EXPUNGE_HOME``) and production (Postgres, S3/MinIO, Redis).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "minioadmin", "expunge"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXPUNGE_", extra="ignore")

    env: Literal["local", "test", "production"] = "local"
    home: Path = Field(default_factory=lambda: Path.home() / ".expunge")

    # Backends. Empty means "the embedded default under home".
    database_url: str = ""
    broker_url: str = ""
    storage_url: str = ""
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None

    # Auth. The bootstrap key lets scripts and tests drive a fresh instance.
    bootstrap_admin_key: str | None = None

    # Audit and certificates. The signing key is Ed25519 (PEM or base64 of the raw 32
    # bytes); the subject salt keys the commitments that stand in for subject ids in the
    # audit log. Outside production both are generated once under home when unset.
    signing_key: str | None = None
    # Public keys (PEM blocks, concatenated) this deployment signed with before a key
    # rotation: checkpoints they signed still verify.
    signing_previous_keys: str | None = None
    subject_salt: str | None = None
    # How often the sweeper verifies the audit log and signs a checkpoint of its head
    # when it grew (0 switches it off; certificates still sign one each).
    audit_checkpoint_seconds: float = Field(default=300.0, ge=0)

    # Limits.
    max_upload_bytes: int = 512 * 1024 * 1024
    max_request_samples: int = 200_000
    # Per-API-key limits on expensive endpoints (moving window: N in any 60 s, bursts of N;
    # 0 switches one off). Generous: they stop runaway scripts, not people. api/ratelimit.py.
    rate_limit_enabled: bool = True
    rate_limit_jobs_per_minute: float = 3000
    rate_limit_uploads_per_minute: float = 300
    rate_limit_deletion_requests_per_minute: float = 600
    rate_limit_audit_per_minute: float = 120

    # Job lifecycle.
    heartbeat_seconds: float = 2.0
    lost_after_seconds: float = 30.0
    dispatch_retry_seconds: float = 5.0
    # A queued job sent this long ago whose Redis queue is empty lost its message (Redis
    # restarted without persistence): it is sent again; the runner's claim drops duplicates.
    redeliver_after_seconds: float = 300.0
    job_time_limit_seconds: int = 6 * 3600
    # Address space a job may add to its worker process, in MiB (0: no cap). Past it an
    # allocation fails and the job fails "out of memory"; the worker keeps serving.
    job_memory_limit_mb: int = 0
    max_attempts: int = 3
    # Workers retry object-storage calls that failed because the server was unreachable:
    # up to this many tries, backoff doubling from base to max seconds between them.
    storage_retry_attempts: int = 6
    storage_retry_base_seconds: float = 0.5
    storage_retry_max_seconds: float = 8.0
    # How often the sweeper looks for objects left by failed, cancelled or killed jobs.
    orphan_sweep_seconds: float = 300.0
    torch_threads: int = 1
    worker_queues: str = "cpu"

    # Deletion requests: webhooks (outbox, retried with exponential backoff) and attachments.
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 10.0
    webhook_backoff_max_seconds: float = 3600.0
    webhook_timeout_seconds: float = 5.0
    max_attachment_bytes: int = 10 * 1024 * 1024
    # How long a rejected or cancelled request keeps its subject/sample ids in clear (it may
    # be refiled) before the sweeper replaces them by salted commitments; a completed
    # request is redacted when it closes.
    closed_request_retention_seconds: float = 30 * 86400.0

    # API.
    cors_origins: list[str] = []
    frontend_dir: Path | None = None

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        home = self.home.expanduser()
        self.home = home
        if not self.database_url:
            self.database_url = f"sqlite:///{home / 'expunge.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{home / 'broker.db'}"
        if not self.storage_url:
            self.storage_url = f"file://{home / 'objects'}"
        if self.env == "production":
            self._refuse_placeholders()
        return self

    def _refuse_placeholders(self) -> None:
        """Production must never run on embedded backends or default secrets."""
        problems = []
        if self.database_url.startswith("sqlite"):
            problems.append("EXPUNGE_DATABASE_URL must point at PostgreSQL in production")
        if self.storage_url.startswith("s3://") and (
            (self.s3_secret_key or "") in PLACEHOLDER_SECRETS
        ):
            problems.append("EXPUNGE_S3_SECRET_KEY is unset or a placeholder")
        if self.bootstrap_admin_key is not None and (
            self.bootstrap_admin_key in PLACEHOLDER_SECRETS or len(self.bootstrap_admin_key) < 24
        ):
            problems.append("EXPUNGE_BOOTSTRAP_ADMIN_KEY must be a random secret of 24+ chars")
        # Every API and worker host must sign with one key and commit subjects with one
        # salt; a per-host file under home would silently differ between hosts.
        if (self.signing_key or "").strip() in PLACEHOLDER_SECRETS:
            problems.append("EXPUNGE_SIGNING_KEY must be set (an Ed25519 key, PEM or base64)")
        if (self.subject_salt or "") in PLACEHOLDER_SECRETS or len(self.subject_salt or "") < 16:
            problems.append("EXPUNGE_SUBJECT_SALT must be a random secret of 16+ chars")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url.startswith("sqla+")


# What EXPUNGE_BOOTSTRAP_ADMIN_KEY must look like (the prefix column holds 16 characters).
ADMIN_KEY_PATTERN = re.compile(r"^exp_[A-Za-z0-9]{1,16}_[A-Za-z0-9_-]{16,}$")


def admin_key_problem(key: str | None) -> str | None:
    """The one line every entry point (``expunge up``/``api``, ``uvicorn api.main:app``)
    answers a malformed bootstrap key with, instead of a traceback from the server's start;
    None when the key is unset or well formed. The key itself is never echoed."""
    if not key or ADMIN_KEY_PATTERN.match(key):
        return None
    return (
        "EXPUNGE_BOOTSTRAP_ADMIN_KEY is malformed: it must look like "
        "exp_<prefix>_<secret>, with a prefix of 1-16 letters or digits and a secret of "
        "16+ letters, digits, '_' or '-' (unset it and `expunge up` makes one)"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
