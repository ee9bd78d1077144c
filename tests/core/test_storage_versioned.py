"""Purging from a versioned bucket, against a real S3 implementation that keeps versions.

rclone (the suite's S3 server) has no versioning; moto's S3 server does. A purge that
only deleted the current object would leave every older version readable, and MinIO in
the production compose file runs with versioning on — so this runs the real protocol.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from minio.commonconfig import ENABLED
from minio.versioningconfig import VersioningConfig
from moto import server as moto_server

from core.storage import S3Store


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def store(endpoint: str, request: pytest.FixtureRequest) -> S3Store:
    bucket = request.node.name.replace("_", "-")[:40].lower()
    store = S3Store(endpoint, "testing", "testing", bucket, prefix="expunge")
    store.put_bytes("warmup", b"")  # creates the bucket
    store._client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    store.delete("warmup")
    return store


def _all_versions(store: S3Store) -> list[str]:
    return sorted(
        o.object_name
        for o in store._client.list_objects(store.bucket, recursive=True, include_version=True)
    )


def test_delete_removes_every_version_and_delete_marker(store: S3Store) -> None:
    for body in (b"v1", b"v2", b"v3"):
        store.put_bytes("models/m/v/weights.safetensors", body)
    store.put_bytes("models/m/keep.json", b"{}")
    assert len(store.list_versions("models/m/v")) == 3

    store.delete("models/m/v/weights.safetensors")

    assert store.list_versions("models/m/v") == []
    assert _all_versions(store) == ["expunge/models/m/keep.json"]


def test_delete_prefix_purges_history_of_every_key(store: S3Store) -> None:
    for n in range(3):
        store.put_bytes(f"datasets/d/shards/{n}.npz", b"old")
        store.put_bytes(f"datasets/d/shards/{n}.npz", b"new")
    store.put_bytes("datasets/other/0.npz", b"x")

    store.delete_prefix("datasets/d")

    assert store.list_versions("datasets/d") == []
    assert _all_versions(store) == ["expunge/datasets/other/0.npz"]
