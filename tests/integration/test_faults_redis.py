"""Redis goes away while clients submit jobs: every submission is still accepted
(recorded in the database's outbox) and every one runs once Redis is back.

The API and the worker reach Redis through a TCP proxy the test cuts (the shared Redis
server cannot be stopped: other tests use it); the worker's Celery connection drops
and has to reconnect by itself, as after a real Redis restart.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fixtures.fault_stack import FAULT_BROKER_DB, FaultStack, fault_stack
from tests.fixtures.s3server import S3Server
from tests.fixtures.tcp_proxy import TcpProxy
from tests.services import REDIS
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    host, port = REDIS.removeprefix("redis://").rsplit(":", 1)
    with TcpProxy(host, int(port)) as running:
        yield running


@pytest.fixture
def stack(
    s3_server: S3Server, proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultStack]:
    storage = {
        "storage_url": f"s3://{s3_server.endpoint}/faults-redis?secure=false",
        "s3_access_key": s3_server.access_key,
        "s3_secret_key": s3_server.secret_key,
        "broker_url": f"redis://127.0.0.1:{proxy.port}/{FAULT_BROKER_DB}",
    }
    with fault_stack(tmp_path_factory.mktemp("faults-redis"), storage) as built:
        assert built.dataset["id"]
        yield built


def test_submissions_while_redis_is_down_are_kept_and_all_run_after(
    stack: FaultStack, proxy: TcpProxy
) -> None:
    worker = stack.worker("redis-worker")
    try:
        warm = stack.wait(stack.train(epochs=1)["id"], {"succeeded", "failed"})
        assert warm["state"] == "succeeded", warm
        assert proxy.connections > 0  # the broker traffic does go through the proxy

        proxy.stop()  # Redis is gone for the API and the worker alike
        submitted = []
        for _ in range(4):
            started = time.monotonic()
            submitted.append(stack.train(epochs=1))
            assert time.monotonic() - started < 10  # fails over to the outbox, fast
        health = stack.api.get("/api/v1/health").json()
        assert not health["queue"]["ok"] and health["outbox_backlog"] >= 4, health
        assert all(stack.job(j["id"])["state"] == "queued" for j in submitted)
        # The outage lasts until the worker's own sweep has tried to send them, and failed.
        wait_for(lambda: "stays in the outbox" in worker.log(), 30, "a failed outbox sweep")

        proxy.start()  # Redis is back; nobody restarts anything
        done = [stack.wait(j["id"], {"succeeded", "failed"}, timeout=90) for j in submitted]
        assert all(d["state"] == "succeeded" for d in done), (done, worker.log()[-3000:])
        assert all(d["attempt"] == 1 for d in done)  # each ran exactly once
        assert worker.proc.poll() is None
    finally:
        worker.stop()


def test_messages_lost_in_a_redis_restart_are_sent_again(stack: FaultStack) -> None:
    """Redis here keeps nothing on disk: a restart forgets every waiting message, while
    the jobs' rows say they were sent. The sweep sends them again; the worker runs each
    exactly once."""
    import redis

    from core.db import session_factory
    from core.jobs import redeliver_lost

    broker = redis.Redis.from_url(f"{REDIS}/{FAULT_BROKER_DB}")
    broker.flushdb()
    jobs = [stack.train(epochs=1) for _ in range(2)]  # no worker yet: they wait in Redis
    assert broker.llen("cpu") == 2
    broker.flushdb()  # the restart: the messages are gone, the rows still say "sent"

    factory = session_factory(stack.settings)
    with factory() as session:
        assert redeliver_lost(session, stack.settings) == 0  # not overdue yet (300 s)
    overdue = stack.settings.model_copy(update={"redeliver_after_seconds": 0})
    with factory() as session:
        assert redeliver_lost(session, overdue) == 2
        assert redeliver_lost(session, overdue) == 0  # their messages wait again: no flood
    assert broker.llen("cpu") == 2

    worker = stack.worker("redeliver-worker")
    try:
        for job in jobs:
            done = stack.wait(job["id"], {"succeeded", "failed"})
            assert done["state"] == "succeeded" and done["attempt"] == 1, done
    finally:
        worker.stop()
