"""Settings for every process, read from the environment (prefix ``EXPUNGE_``).

Each backend is chosen by a URL so one code path serves both deployments: the embedded
default (SQLite, a local folder, a SQLite-backed Celery broker, all under
``EXPUNGE_HOME``) and production (Postgres, S3/MinIO, Redis).
"""

from __future__ import annotations

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

    # Limits.
    max_upload_bytes: int = 512 * 1024 * 1024
    max_request_samples: int = 200_000

    # Job lifecycle.
    heartbeat_seconds: float = 2.0
    lost_after_seconds: float = 30.0
    dispatch_retry_seconds: float = 5.0
    job_time_limit_seconds: int = 6 * 3600
    max_attempts: int = 3
    torch_threads: int = 1
    worker_queues: str = "cpu"

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
