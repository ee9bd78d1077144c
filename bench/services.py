"""Real local services for tests and benchmarks: a fresh Postgres database, a Redis db,
free ports, worker processes; and ``wait_for``, the one way both poll for something.

Nothing here is a mock: the API and the workers talk to the same servers production does.
It lives outside ``tests/`` so the benchmarks can start the same services without
importing the test suite; ``tests/services.py`` re-exports it for the tests.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from cli import _die_with_parent as die_with_parent
from core.settings import Settings

T = TypeVar("T")

PG_ADMIN = os.environ.get("EXPUNGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("EXPUNGE_TEST_REDIS", "redis://127.0.0.1:6379")
ADMIN_KEY = "exp_testadmin0001_" + "t" * 43
REPO = Path(__file__).resolve().parent.parent


def wait_for(
    fn: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    *,
    until: Callable[[T], Any] = bool,
    interval: float = 0.2,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``fn`` every ``interval`` seconds until ``until(value)`` holds; return that value.

    Raises ``TimeoutError`` after ``timeout`` seconds, naming ``what`` (a callable is
    asked only then, e.g. for a worker's log) and the last value ``fn`` returned (or the
    last exception of ``ignore`` it raised), so a failure says where things stood.
    Any other exception from ``fn`` stops the wait at once (a process that died).
    """
    deadline = time.monotonic() + timeout
    last: Any = "<never returned>"
    while True:
        try:
            value = fn()
        except ignore as exc:
            last = exc
        else:
            if until(value):
                return value
            last = value
        if time.monotonic() >= deadline:
            label = what() if callable(what) else what
            raise TimeoutError(f"timed out after {timeout}s waiting for {label}; last: {last!r}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away database; dropped afterwards even if workers still hold connections."""
    name = f"expunge_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CLAIM_KEY = "expunge:test-session"


@contextmanager
def redis_database() -> Iterator[str]:
    """A Redis logical database no other live test session holds (1–14; 15 is the fault
    stack's). Two sessions sharing one would steal each other's Celery messages, so each
    claims its database with a key that expires if the session dies without letting go."""
    import redis

    token = secrets.token_hex(8)
    order = [n + 1 for n in range(14)]
    start = secrets.randbelow(14)
    for db in order[start:] + order[:start]:
        client = redis.Redis.from_url(f"{REDIS}/{db}")
        if client.set(CLAIM_KEY, token, nx=True, ex=3 * 3600):
            try:
                yield f"{REDIS}/{db}"
            finally:
                if client.get(CLAIM_KEY) == token.encode():
                    client.delete(CLAIM_KEY)
                client.close()
            return
        client.close()
    raise RuntimeError(f"every Redis database 1-14 is claimed ({CLAIM_KEY}); is a run stuck?")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a child process needs to see the same backends as ``settings``."""
    env = {
        "EXPUNGE_ENV": settings.env,
        "EXPUNGE_HOME": str(settings.home),
        "EXPUNGE_DATABASE_URL": settings.database_url,
        "EXPUNGE_BROKER_URL": settings.broker_url,
        "EXPUNGE_STORAGE_URL": settings.storage_url,
        "EXPUNGE_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "EXPUNGE_LOST_AFTER_SECONDS": str(settings.lost_after_seconds),
        "EXPUNGE_DISPATCH_RETRY_SECONDS": str(settings.dispatch_retry_seconds),
        "EXPUNGE_TORCH_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    for name in ("s3_access_key", "s3_secret_key", "bootstrap_admin_key"):
        value = getattr(settings, name)
        if value:
            env[f"EXPUNGE_{name.upper()}"] = value
    return env


class WorkerProcess:
    """`expunge worker` as a real child process (solo pool), with its log kept for failures."""

    def __init__(self, settings: Settings, log_path: Path, queues: str = "cpu,gpu") -> None:
        self.log_path = log_path
        self.settings = settings
        self.queues = queues
        self._starts = 0
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings_env(self.settings)}
        self._starts += 1
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--queues", self.queues],
            preexec_fn=die_with_parent,
            cwd=REPO,
            env=env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def restart(self) -> WorkerProcess:
        self.stop()
        self.proc = self._spawn()
        return self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            return self.log().count("ready.") >= self._starts

        wait_for(ready, timeout, lambda: f"the worker to be ready:\n{self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
