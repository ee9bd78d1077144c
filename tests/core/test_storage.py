"""ObjectStore behaviour, run against both backends: a local folder and a real S3 server."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from minio.error import InvalidResponseError

from core.storage import (
    AccessDenied,
    InvalidKey,
    LocalStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RetryingStore,
    RetryPolicy,
    S3Store,
    StorageError,
    StorageUnavailable,
    _translate,
    open_store,
    validate_key,
)
from tests.fixtures.s3server import S3Server, free_port

MiB = 1 << 20


class GeneratedReader(io.RawIOBase):
    """A file-like over a generator: the data never exists as one buffer.

    Records the largest single read request, so a test can prove the consumer streamed.
    """

    def __init__(self, total: int, block: int = 64 * 1024) -> None:
        super().__init__()
        self.total = total
        self.block = block
        self.served = 0
        self.largest_request = 0
        self.reads = 0
        self.digest = hashlib.sha256()
        self._pending = b""
        self._blocks = self._generate()

    def _generate(self) -> Iterator[bytes]:
        counter = 0
        while self.served < self.total:
            seed = hashlib.sha256(counter.to_bytes(8, "big")).digest()
            block = (seed * (self.block // len(seed) + 1))[
                : min(self.block, self.total - self.served)
            ]
            counter += 1
            yield block

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if size is None or size < 0:
            raise AssertionError("the store asked for the whole stream at once")
        self.largest_request = max(self.largest_request, size)
        if not self._pending:
            self._pending = next(self._blocks, b"")
        data, self._pending = self._pending[:size], self._pending[size:]
        self.served += len(data)
        self.digest.update(data)
        return data


# ------------------------------------------------------------------ both backends


def test_put_and_get_bytes(store: ObjectStore) -> None:
    info = store.put_bytes("datasets/1/shard-000.npz", b"hello world")
    assert info == ObjectInfo(
        "datasets/1/shard-000.npz", 11, hashlib.sha256(b"hello world").hexdigest()
    )
    assert store.get_bytes("datasets/1/shard-000.npz") == b"hello world"
    store.put_bytes("datasets/1/shard-000.npz", b"replaced")
    assert store.get_bytes("datasets/1/shard-000.npz") == b"replaced"


def test_empty_object_and_unicode_key(store: ObjectStore) -> None:
    store.put_bytes("empty", b"")
    assert store.get_bytes("empty") == b""
    assert store.stat("empty").size == 0
    store.put_bytes("subjects/Zoë Ångström/photo 1.png", b"\x89PNG")
    assert store.get_bytes("subjects/Zoë Ångström/photo 1.png") == b"\x89PNG"
    assert "subjects/Zoë Ångström/photo 1.png" in list(store.list())


def test_put_file_and_download_file(store: ObjectStore, tmp_path: Path) -> None:
    payload = os.urandom(3 * MiB + 17)
    source = tmp_path / "checkpoint.safetensors"
    source.write_bytes(payload)
    info = store.put_file("models/7/v1.safetensors", source)
    assert info.size == len(payload)
    assert info.sha256 == hashlib.sha256(payload).hexdigest()
    target = tmp_path / "out" / "copy.bin"
    store.download_file("models/7/v1.safetensors", target)
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["copy.bin"]  # no temp left behind


def test_download_missing_leaves_no_file(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        store.download_file("nope", tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_put_stream_hash_matches_hashlib(store: ObjectStore) -> None:
    payload = os.urandom(2 * MiB + 3)
    info = store.put_stream("blobs/stream.bin", io.BytesIO(payload), content_type="image/png")
    assert info.size == len(payload)
    assert info.sha256 == hashlib.sha256(payload).hexdigest()
    assert store.get_bytes("blobs/stream.bin") == payload


def test_put_stream_20mb_never_reads_it_whole(store: ObjectStore) -> None:
    total = 20 * MiB
    reader = GeneratedReader(total)
    tracemalloc.start()
    try:
        info = store.put_stream("big/20mb.bin", reader)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total
    assert info.sha256 == reader.digest.hexdigest()
    assert reader.reads > 3
    # Each read asks for at most one chunk (local) or one multipart part (+1 byte, S3).
    part = store.part_size if isinstance(store, S3Store) else MiB
    assert reader.largest_request <= part + 1 < total
    if isinstance(store, LocalStore):
        assert peak < 8 * MiB, f"local put_stream held {peak / MiB:.1f} MiB"
    # Read it back as a stream and compare digests without holding it either.
    digest = hashlib.sha256()
    size = 0
    for chunk in store.iter_chunks("big/20mb.bin", chunk_size=MiB):
        assert len(chunk) <= MiB
        digest.update(chunk)
        size += len(chunk)
    assert (size, digest.hexdigest()) == (total, info.sha256)


def test_iter_chunks_can_be_closed_early(store: ObjectStore) -> None:
    store.put_bytes("chunks.bin", b"x" * 10_000)
    chunks = store.iter_chunks("chunks.bin", chunk_size=1000)
    assert next(chunks) == b"x" * 1000
    chunks.close()
    assert list(chunks) == []
    with store.iter_chunks("chunks.bin", chunk_size=4096) as again:
        assert b"".join(again) == b"x" * 10_000
    # The released connection or file handle does not block later reads.
    for _ in range(15):
        with store.iter_chunks("chunks.bin", chunk_size=100) as partial:
            next(partial)
    assert store.get_bytes("chunks.bin") == b"x" * 10_000


def test_missing_objects_raise_object_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.get_bytes("missing/key")
    with pytest.raises(ObjectNotFound):
        store.iter_chunks("missing/key")  # at call time, not on the first chunk
    with pytest.raises(ObjectNotFound):
        store.stat("missing/key")
    assert not store.exists("missing/key")


def test_stat_and_exists(store: ObjectStore) -> None:
    store.put_bytes("a/b/c.bin", b"12345")
    assert store.exists("a/b/c.bin")
    assert store.stat("a/b/c.bin").size == 5
    assert store.stat("a/b/c.bin").key == "a/b/c.bin"
    assert not store.exists("a/b")  # a folder is not an object


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put_bytes("certs/1.json", b"{}")
    store.delete("certs/1.json")
    assert not store.exists("certs/1.json")
    store.delete("certs/1.json")
    store.delete("never/existed")
    assert list(store.list()) == []


def test_list_is_sorted_and_scoped_to_a_folder(store: ObjectStore) -> None:
    for key in ["b/2", "a/1", "a-c/3", "a/z/4", "ab/5", "a/0"]:
        store.put_bytes(key, key.encode())
    assert list(store.list()) == sorted(["b/2", "a/1", "a-c/3", "a/z/4", "ab/5", "a/0"])
    assert list(store.list("a")) == ["a/0", "a/1", "a/z/4"]
    assert list(store.list("a/")) == ["a/0", "a/1", "a/z/4"]
    assert list(store.list("a/z")) == ["a/z/4"]
    assert list(store.list("nothing")) == []
    assert store.list_versions("a") == [("a/0", None), ("a/1", None), ("a/z/4", None)]


def test_delete_prefix_removes_only_that_folder(store: ObjectStore) -> None:
    for key in ["datasets/1/s0", "datasets/1/s1", "datasets/1/thumbs/t0", "datasets/10/s0"]:
        store.put_bytes(key, b"x")
    assert store.delete_prefix("datasets/1") == 3
    assert list(store.list()) == ["datasets/10/s0"]
    assert store.list_versions("datasets/1") == []
    assert store.delete_prefix("datasets/1/") == 0
    with pytest.raises(InvalidKey):
        store.delete_prefix("")
    with pytest.raises(InvalidKey):
        store.delete_prefix("/")


BAD_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "a/./b",
    "a\\b",
    "a/../b",
    "..",
    ".",
    "",
    "a/",
    "a\x00b",
    "line\nbreak",
    "é" * 600,  # 1200 UTF-8 bytes
    ".~tmp-sneaky",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_are_rejected(store: ObjectStore, key: str, tmp_path: Path) -> None:
    operations: list[Any] = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_stream(key, io.BytesIO(b"x")),
        lambda: store.get_bytes(key),
        lambda: store.iter_chunks(key),
        lambda: store.stat(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.download_file(key, tmp_path / "out"),
    ]
    for operation in operations:
        with pytest.raises(InvalidKey):
            operation()
    assert list(store.list()) == []


def test_invalid_list_prefix(store: ObjectStore) -> None:
    with pytest.raises(InvalidKey):
        list(store.list("../up"))
    with pytest.raises(InvalidKey):
        store.list_versions("a//b")


def test_key_length_limit() -> None:
    assert validate_key("k" * 1024) == "k" * 1024
    with pytest.raises(InvalidKey):
        validate_key("k" * 1025)
    with pytest.raises(InvalidKey):
        validate_key(123)  # type: ignore[arg-type]
    assert issubclass(InvalidKey, ValueError)


# ------------------------------------------------------------------ local backend


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


def test_local_store_never_writes_outside_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    store = LocalStore(root)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    before = _files_under(tmp_path)
    for key in BAD_KEYS:
        with pytest.raises(InvalidKey):
            store.put_bytes(key, b"x")
    # A symlinked folder inside the root must not become a way out.
    with pytest.raises(InvalidKey):
        store.put_bytes("escape/evil.bin", b"x")
    with pytest.raises(InvalidKey):
        store.put_stream("escape/deeper/evil.bin", io.BytesIO(b"x"))
    (outside / "secret.txt").write_bytes(b"secret")
    with pytest.raises(InvalidKey):
        store.get_bytes("escape/secret.txt")
    assert _files_under(tmp_path) == before | {outside / "secret.txt"}
    assert list(store.list()) == []  # symlinked folders are not followed


def test_local_store_failed_stream_leaves_nothing(local_store: LocalStore) -> None:
    local_store.put_bytes("model.bin", b"old")

    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk on fire")
            return b"new" * 100

    with pytest.raises(OSError, match="disk on fire"):
        local_store.put_stream("model.bin", Broken())  # type: ignore[arg-type]
    assert local_store.get_bytes("model.bin") == b"old"  # atomic: old object intact
    assert [p.name for p in local_store.root.iterdir()] == ["model.bin"]  # no temp file


def test_local_store_prunes_empty_folders_and_reports_conflicts(local_store: LocalStore) -> None:
    local_store.put_bytes("a/b/c", b"1")
    with pytest.raises(StorageError, match="parent"):
        local_store.put_bytes("a/b/c/d", b"2")
    with pytest.raises(StorageError, match="folder"):
        local_store.put_bytes("a/b", b"2")
    local_store.delete("a/b/c")
    assert list(local_store.root.iterdir()) == []
    local_store.put_bytes("a", b"now a file")  # the name is free again
    assert local_store.get_bytes("a") == b"now a file"


def test_local_store_check(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.check()
    (tmp_path / "s").rmdir()
    with pytest.raises(StorageUnavailable):
        store.check()


# --------------------------------------------------------------------- S3 backend


def test_s3_stat_reports_recorded_sha256(s3_store: S3Store, tmp_path: Path) -> None:
    info = s3_store.put_bytes("x.bin", b"abc")
    assert s3_store.stat("x.bin") == info
    path = tmp_path / "f.bin"
    path.write_bytes(b"file body")
    s3_store.put_file("f.bin", path)
    expected = ObjectInfo("f.bin", 9, hashlib.sha256(b"file body").hexdigest())
    assert s3_store.stat("f.bin") == expected


def test_s3_prefix_scopes_the_store(s3_server: S3Server, s3_store: S3Store) -> None:
    scoped = S3Store(
        s3_server.endpoint,
        s3_server.access_key,
        s3_server.secret_key,
        bucket=s3_store.bucket,
        prefix="tenant/a",
    )
    scoped.put_bytes("k/1", b"1")
    s3_store.put_bytes("other", b"2")
    assert list(scoped.list()) == ["k/1"]
    assert list(s3_store.list()) == ["other", "tenant/a/k/1"]
    assert scoped.delete_prefix("k") == 1
    assert list(s3_store.list()) == ["other"]


def test_s3_unreachable_server_fails_fast() -> None:
    store = S3Store(f"127.0.0.1:{free_port()}", "access-key-123", "secret-key-123456", "bkt")
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.put_bytes("k", b"v")
    assert time.monotonic() - started < 10


def test_s3_hung_server_times_out_as_unavailable() -> None:
    """A server that accepts connections but never answers must not hang a worker."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        store = S3Store(
            f"127.0.0.1:{port}", "access-key-123", "secret-key-123456", "bkt", read_timeout=0.3
        )
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            store.check()
        assert time.monotonic() - started < 10
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_s3_wrong_credentials_fail_clearly(s3_server: S3Server, s3_store: S3Store) -> None:
    s3_store.put_bytes("k", b"v")  # creates the bucket with good credentials
    for access, secret in [
        (s3_server.access_key, "definitely-not-the-secret-key"),
        ("UNKNOWNACCESSKEY0000", s3_server.secret_key),
    ]:
        bad = S3Store(s3_server.endpoint, access, secret, bucket=s3_store.bucket)
        with pytest.raises(AccessDenied, match="access key") as caught:
            bad.get_bytes("k")
        assert not isinstance(caught.value, StorageUnavailable)  # callers must not retry
        with pytest.raises(AccessDenied):
            bad.check()
        with pytest.raises(AccessDenied):
            bad.put_bytes("k2", b"v")


def test_s3_creates_bucket_on_first_use(s3_server: S3Server) -> None:
    store = S3Store(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, "fresh-bucket")
    store.put_bytes("k", b"v")
    assert (s3_server.root / "fresh-bucket" / "k").read_bytes() == b"v"
    store.check()


def test_s3_delete_removes_every_version(
    s3_store: S3Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rclone has no versioning, so the versioned-bucket path runs against a fake client."""
    removed: list[tuple[str, str | None]] = []
    listing = [
        SimpleNamespace(object_name="k", version_id="v1", is_delete_marker=False, is_dir=False),
        SimpleNamespace(object_name="k", version_id="v2", is_delete_marker=True, is_dir=False),
        SimpleNamespace(object_name="k2", version_id="v3", is_delete_marker=False, is_dir=False),
    ]

    class FakeClient:
        def bucket_exists(self, bucket: str) -> bool:
            return True

        def get_bucket_versioning(self, bucket: str) -> Any:
            return SimpleNamespace(status="Enabled")

        def list_objects(self, bucket: str, prefix: str | None = None, **kwargs: Any) -> Any:
            assert kwargs.get("include_version") is True
            return [o for o in listing if o.object_name.startswith(prefix or "")]

        def remove_objects(self, bucket: str, objects: list[Any]) -> Iterator[Any]:
            removed.extend((o.name, o.version_id) for o in objects)
            return iter(())

        def remove_object(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("a plain delete would leave old versions behind")

    monkeypatch.setattr(s3_store, "_client", FakeClient())
    s3_store.delete("k")
    assert removed == [("k", "v1"), ("k", "v2")]
    assert s3_store.list_versions() == [("k", "v1"), ("k", "v2"), ("k2", "v3")]


def test_s3_error_translation() -> None:
    def response_error(status: int, body: str) -> InvalidResponseError:
        return InvalidResponseError(status, "text/xml", body)

    missing = response_error(404, "<Error><Code>NoSuchKey</Code></Error>")
    assert isinstance(_translate(missing, "get", "k"), ObjectNotFound)
    busy = response_error(503, "<Error><Code>SlowDown</Code></Error>")
    assert isinstance(_translate(busy, "get", "k"), StorageUnavailable)
    broken = response_error(500, "<Error><Code>InternalError</Code></Error>")
    error = _translate(broken, "get", "k")
    assert type(error) is StorageError
    assert isinstance(_translate(ConnectionRefusedError(), "get"), StorageUnavailable)


# ---------------------------------------------------------------------- open_store


def test_open_store_local_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(f"file://{tmp_path}/a")
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "a").resolve()
    store = open_store(str(tmp_path / "b"))
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "b").resolve()
    monkeypatch.chdir(tmp_path)
    store = open_store("relative/store")
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "relative/store").resolve()
    store = open_store(f"file://localhost{tmp_path}/with%20space")
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "with space").resolve()


def test_open_store_s3_urls() -> None:
    store = open_store(
        "s3://minio.internal:9000/expunge/prod/eu?secure=true", "access", "secret-key"
    )
    assert isinstance(store, S3Store)
    assert (store.endpoint, store.bucket, store.prefix, store.secure) == (
        "minio.internal:9000",
        "expunge",
        "prod/eu",
        True,
    )
    plain = open_store("s3://s3.example.com/bucket-x", "access", "secret-key")
    assert isinstance(plain, S3Store)
    assert (plain.endpoint, plain.bucket, plain.prefix, plain.secure) == (
        "s3.example.com",
        "bucket-x",
        "",
        False,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://host:9000/bucket", "access key"),  # no credentials given
        ("ftp://host/bucket", "scheme"),
        ("s3://host:9000", "no bucket"),
        ("s3://host:9000/bucket?secure=maybe", "secure"),
        ("s3://host:9000/bucket?colour=blue", "unknown"),
        ("s3://user:pw@host:9000/bucket", "not in the URL"),
        ("file://otherhost/data", "remote host"),
        ("", "empty"),
    ],
)
def test_open_store_rejects_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


def test_open_store_s3_round_trip(s3_server: S3Server) -> None:
    store = open_store(
        f"s3://{s3_server.endpoint}/opened-bucket/pre?secure=false",
        s3_server.access_key,
        s3_server.secret_key,
    )
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v"
    assert (s3_server.root / "opened-bucket" / "pre" / "k").is_file()


def test_error_hierarchy() -> None:
    for error in (ObjectNotFound, InvalidKey, StorageUnavailable, AccessDenied):
        assert issubclass(error, StorageError)


# ------------------------------------------------------------------------- retries


class FlakyStore(LocalStore):
    """A local store whose reads fail with ``fault`` the first ``failures`` times."""

    def __init__(self, root: Path, failures: int, fault: Exception) -> None:
        super().__init__(root)
        self.failures, self.fault, self.calls = failures, fault, 0

    def _get_bytes(self, key: str) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.fault
        return super()._get_bytes(key)


def test_retries_ride_out_a_short_outage(tmp_path: Path) -> None:
    flaky = FlakyStore(tmp_path, failures=2, fault=StorageUnavailable("connection refused"))
    flaky.put_bytes("a/b.bin", b"payload")
    slept: list[float] = []
    store = RetryingStore(flaky, RetryPolicy(attempts=4, base_seconds=0.5), sleep=slept.append)
    assert store.get_bytes("a/b.bin") == b"payload"
    assert flaky.calls == 3 and slept == [0.5, 1.0]


def test_retries_are_bounded_and_say_how_long_they_tried(tmp_path: Path) -> None:
    flaky = FlakyStore(tmp_path, failures=99, fault=StorageUnavailable("connection refused"))
    slept: list[float] = []
    policy = RetryPolicy(attempts=5, base_seconds=1.0, max_seconds=3.0)
    store = RetryingStore(flaky, policy, sleep=slept.append)
    with pytest.raises(StorageUnavailable, match="gave up after 5 tries") as caught:
        store.get_bytes("a/b.bin")
    assert flaky.calls == 5 and slept == [1.0, 2.0, 3.0, 3.0]  # doubling, capped
    assert "over 9.0s to read a/b.bin: connection refused" in str(caught.value)
    assert isinstance(caught.value.__cause__, StorageUnavailable)


@pytest.mark.parametrize(
    "fault", [ObjectNotFound("no such object"), AccessDenied("bad credentials"), InvalidKey("..")]
)
def test_only_unavailable_is_retried(tmp_path: Path, fault: StorageError) -> None:
    flaky = FlakyStore(tmp_path, failures=99, fault=fault)
    slept: list[float] = []
    store = RetryingStore(flaky, RetryPolicy(attempts=6), sleep=slept.append)
    with pytest.raises(type(fault)) as caught:
        store.get_bytes("a/b.bin")
    assert caught.value is fault and flaky.calls == 1 and slept == []
