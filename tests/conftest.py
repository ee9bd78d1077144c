"""Session-wide real services: PostgreSQL, Redis, an S3 server; the app on top of them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from core import migrate  # noqa: E402
from core.settings import Settings  # noqa: E402
from tests.fixtures.fault_stack import FaultStack, fault_stack  # noqa: E402
from tests.fixtures.s3server import S3Server, start_s3_server  # noqa: E402
from tests.services import ADMIN_KEY, WorkerProcess, postgres_database, redis_database  # noqa: E402


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prod_settings(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """The production configuration: Postgres + Redis + S3, migrated with Alembic."""
    with postgres_database() as url, redis_database() as broker:
        settings = Settings(
            env="test",
            home=tmp_path_factory.mktemp("home"),
            database_url=url,
            broker_url=broker,
            storage_url=f"s3://{s3_server.endpoint}/expunge-test?secure=false",
            s3_access_key=s3_server.access_key,
            s3_secret_key=s3_server.secret_key,
            bootstrap_admin_key=ADMIN_KEY,
            heartbeat_seconds=0.5,
            lost_after_seconds=6,
            dispatch_retry_seconds=1,
        )
        migrate.upgrade(settings)
        yield settings
        from core.db import get_engine

        get_engine(settings).dispose()


@pytest.fixture(scope="session")
def app(prod_settings: Settings):  # type: ignore[no-untyped-def]
    from api.app import create_app

    return create_app(prod_settings, run_sweeper=False)


@pytest.fixture(scope="session")
def api(app):  # type: ignore[no-untyped-def]
    """A TestClient authenticated as the bootstrap admin."""
    from fastapi.testclient import TestClient

    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


@pytest.fixture(scope="session")
def anon(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def idle_stack(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    """A private stack no worker serves: its own database, Redis database and bucket.

    A job submitted here stays ``queued`` until the test moves it, whatever the session's
    shared worker (or its sweeper, which re-sends queued jobs) is doing, so tests that
    assert ``queued`` or drive the runner by hand cannot race it."""
    with redis_database() as broker:
        storage = {
            "storage_url": f"s3://{s3_server.endpoint}/expunge-idle?secure=false",
            "s3_access_key": s3_server.access_key,
            "s3_secret_key": s3_server.secret_key,
            "broker_url": broker,
        }
        with fault_stack(tmp_path_factory.mktemp("idle"), storage) as stack:
            yield stack


@pytest.fixture(scope="session")
def worker(
    prod_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log_path = Path(tmp_path_factory.mktemp("worker")) / "worker.log"
    proc = WorkerProcess(prod_settings, log_path).wait_ready()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(autouse=True)
def _revive_worker(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test may stop or kill the shared worker; the next one gets a live worker again."""
    yield
    if "worker" in request.fixturenames:
        proc = request.getfixturevalue("worker")
        if proc.proc.poll() is not None:
            proc.restart()


@pytest.fixture(scope="session")
def mnist_small(api) -> dict:  # type: ignore[no-untyped-def]
    """A 600-sample MNIST slice registered once for the session."""
    response = api.post(
        "/api/v1/datasets", json={"name": "mnist-small", "source": {"name": "mnist", "limit": 600}}
    )
    assert response.status_code == 201, response.text
    return response.json()
