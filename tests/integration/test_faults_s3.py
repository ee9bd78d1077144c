"""The S3 server goes away while a worker runs a job.

A short outage is ridden out (bounded exponential backoff) and the job succeeds; a long
one fails the job with "object storage unavailable: ..."; in both cases every object the
database points at exists, and what a failed job left behind is swept once storage is
back. The S3 server here is a second rclone instance, so the session's stays up.
"""

from __future__ import annotations

import hashlib
import io
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from core.db import session_factory
from core.jobs import sweep_orphans
from core.storage import (
    RetryPolicy,
    S3Store,
    StorageUnavailable,
    with_retries,
    without_retries,
)
from models import Job, ModelVersion
from tests.fixtures.fault_stack import FaultStack, TunedWorker, fault_stack
from tests.fixtures.s3server import S3Server, start_s3_server
from tests.support import wait_for

pytestmark = pytest.mark.integration


def stop(server: S3Server) -> None:
    server.stop()
    assert server.process.poll() is not None


def restart(server: S3Server) -> None:
    """The same rclone command again: same port, keys and data folder."""
    with server.log_path.open("ab") as log:
        server.process = subprocess.Popen(
            server.process.args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    host, port = server.endpoint.rsplit(":", 1)

    def listens() -> bool:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True

    wait_for(
        listens,
        15,
        lambda: f"rclone to come back:\n{server.log()}",
        ignore=(OSError,),
        interval=0.05,
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3_server(tmp_path_factory.mktemp("faults-s3"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    storage = {
        "storage_url": f"s3://{s3.endpoint}/faults?secure=false",
        "s3_access_key": s3.access_key,
        "s3_secret_key": s3.secret_key,
    }
    with fault_stack(tmp_path_factory.mktemp("faults-s3-stack"), storage) as built:
        assert built.dataset["id"]  # registered while storage is up
        yield built


@pytest.fixture(scope="module")
def s3_worker(stack: FaultStack) -> Iterator[TunedWorker]:
    # Budget: 0.25 + 0.5 + 1 + 1 + 1 = 3.75 s of waiting over 6 tries per storage call.
    proc = stack.worker(
        "s3-worker",
        storage_retry_attempts=6,
        storage_retry_base_seconds=0.25,
        storage_retry_max_seconds=1,
    )
    try:
        yield proc
    finally:
        proc.stop()


def test_retry_layer_rides_out_a_restart_and_gives_up_after_its_budget(s3: S3Server) -> None:
    raw = S3Store(s3.endpoint, s3.access_key, s3.secret_key, "retry-unit")
    store = with_retries(raw, RetryPolicy(attempts=8, base_seconds=0.2, max_seconds=0.5))
    assert without_retries(store) is raw
    stop(s3)
    revive = threading.Timer(0.6, restart, args=(s3,))
    revive.start()
    try:
        store.put_bytes("a/b.bin", b"survived")  # first tries are refused, a later one lands
    finally:
        revive.join()
    assert raw.get_bytes("a/b.bin") == b"survived"

    # A rewindable stream is sent again from where it started, not from where it broke.
    stop(s3)
    revive = threading.Timer(0.6, restart, args=(s3,))
    revive.start()
    try:
        info = store.put_stream("a/stream.bin", io.BytesIO(b"x" * 1000 + b"end"))
    finally:
        revive.join()
    assert info.size == 1003 and raw.get_bytes("a/stream.bin").endswith(b"end")

    stop(s3)
    delays: list[float] = []
    quick = with_retries(raw, RetryPolicy(attempts=4, base_seconds=0.1, max_seconds=0.25))
    quick._sleep = delays.append  # type: ignore[attr-defined]
    try:
        with pytest.raises(StorageUnavailable, match="gave up after 4 tries"):
            quick.get_bytes("a/b.bin")
    finally:
        restart(s3)
    assert delays == [0.1, 0.2, 0.25]  # doubling, capped


def _versions_point_at_existing_objects(stack: FaultStack) -> int:
    """Every key any model version row names exists in storage, with the recorded hash."""
    checked = 0
    with session_factory(stack.settings)() as session:
        for version in session.scalars(select(ModelVersion)):
            for key in (version.checkpoint_key, version.config_key, version.sample_ids_key):
                if key:
                    assert stack.store.exists(key), f"{version.id} points at missing {key}"
                    checked += 1
            blob = stack.store.get_bytes(version.checkpoint_key)
            assert hashlib.sha256(blob).hexdigest() == version.sha256
    return checked


def test_short_outage_during_a_job_is_ridden_out(
    stack: FaultStack, s3: S3Server, s3_worker: TunedWorker
) -> None:
    stop(s3)  # the job's first storage call (reading the shards) meets a dead server
    try:
        job = stack.train(epochs=1)
        wait_for(
            lambda: "object storage unavailable (try 2/6)" in s3_worker.log(),
            60,
            "the running job to retry storage",
            interval=0.1,
        )
        assert stack.job(job["id"])["state"] == "running"
    finally:
        restart(s3)
    done = stack.wait(job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", (done, s3_worker.log()[-3000:])
    assert _versions_point_at_existing_objects(stack) >= 3


def test_long_outage_fails_the_job_with_the_reason_and_leaves_nothing_pointing_nowhere(
    stack: FaultStack, s3: S3Server, s3_worker: TunedWorker
) -> None:
    model = stack.new_model()
    job = stack.train(model, epochs=500, max_train_samples=300, checkpoint_every_steps=4)
    resume = f"jobs/{job['id']}/resume.pt"
    wait_for(lambda: stack.store.exists(resume), 120, "a resume checkpoint", interval=0.1)
    finished_tasks = s3_worker.log().count(": 'failed'")
    stop(s3)  # and it stays down past the worker's retry budget
    try:
        done = stack.wait(job["id"], {"succeeded", "failed"}, timeout=60)
        # Storage stays down until the worker is through with the job (its clean-up too).
        wait_for(
            lambda: s3_worker.log().count(": 'failed'") > finished_tasks,
            120,
            "the task to end",
            interval=0.1,
        )
    finally:
        restart(s3)
    assert done["state"] == "failed", done
    assert done["error"].startswith("object storage unavailable: gave up after 6 tries"), done
    assert done["result_version_id"] is None
    versions = stack.api.get(f"/api/v1/models/{model['id']}/versions").json()["data"]
    assert versions == []
    _versions_point_at_existing_objects(stack)

    # Cleaning up failed too (storage was down): the checkpoint is an orphan until the
    # sweeper's orphan pass, which removes it now that storage is back.
    assert stack.store.exists(resume)
    # The same pass must spare what a succeeded job owns: its version's files and the
    # objects its row lists as artifacts (a generate job keeps its images under jobs/).
    factory = session_factory(stack.settings)
    with factory() as session:
        winner = session.scalars(select(Job).where(Job.state == "succeeded")).first()
        assert winner is not None
        listed, leftover = f"jobs/{winner.id}/generated/grid.png", f"jobs/{winner.id}/resume.pt"
        winner.artifacts = [*winner.artifacts, {"name": "grid.png", "key": listed}]
        session.commit()
    stack.store.put_bytes(listed, b"png")
    stack.store.put_bytes(leftover, b"stale checkpoint")

    with factory() as session:
        assert sweep_orphans(session, stack.store, grace_seconds=0) == 2
    assert list(stack.store.list(f"jobs/{job['id']}")) == []
    assert list(stack.store.list(f"models/{model['id']}")) == []
    assert list(stack.store.list(f"jobs/{winner.id}")) == [listed]
    assert _versions_point_at_existing_objects(stack) >= 3
