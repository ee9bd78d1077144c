"""PostgreSQL goes away under write load: the API answers 503 + Retry-After (never 500),
recovers by itself when the database is back, and loses no acknowledged write.

The shared PostgreSQL server cannot be restarted (other tests use it), so the fault is a
TCP proxy between this app and the server: ``stop()`` cuts every open connection and
refuses new ones, which is what the app sees when the server restarts.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn

from api.app import create_app
from core import migrate
from core.db import get_engine
from core.settings import Settings
from tests.fixtures.s3server import free_port
from tests.fixtures.tcp_proxy import TcpProxy
from tests.services import ADMIN_KEY, postgres_database
from tests.support import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Outcome:
    phase: str  # up | down | back
    status: int
    name: str
    body: dict
    retry_after: str | None


class LiveServer:
    """The real ASGI server (uvicorn) on a free port, in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings, run_sweeper=False),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        wait_for(lambda: self.server.started, 20, "uvicorn to start", interval=0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def proxied_settings(prod_settings: Settings) -> Iterator[tuple[Settings, TcpProxy, str]]:
    """A fresh migrated database (hundreds of test rows stay out of the session's), which
    the app reaches only through the proxy; the test reads it back directly."""
    with postgres_database() as direct_url, TcpProxy("127.0.0.1", 5432) as proxy:
        migrate.upgrade(prod_settings.model_copy(update={"database_url": direct_url}))
        host_and_db = direct_url.rsplit("@", 1)[1]
        database = host_and_db.split("/", 1)[1]
        url = direct_url.replace(host_and_db, f"127.0.0.1:{proxy.port}/{database}")
        settings = prod_settings.model_copy(update={"database_url": url})
        try:
            yield settings, proxy, direct_url
        finally:
            get_engine(settings).dispose()


def test_database_outage_is_503_then_recovers_without_losing_acked_writes(
    proxied_settings: tuple[Settings, TcpProxy, str],
) -> None:
    settings, proxy, direct_url = proxied_settings
    phase = "up"
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        # Half the clients also send Idempotency-Key: that middleware reads the database
        # before any route runs, so it must answer 503 as well.
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while not stop.is_set():
                name = f"pgfault-{worker}-{uuid.uuid4().hex[:10]}"
                extra = {"Idempotency-Key": name} if worker % 2 else {}
                sent_in = phase
                try:
                    response = http.post(
                        "/api/v1/models",
                        json={"name": name, "architecture": {"name": "mlp", "num_classes": 2}},
                        headers=extra,
                    )
                except httpx.TransportError as exc:  # a dropped HTTP connection: status 0
                    status, body, retry_after = 0, {"raw": repr(exc)}, None
                else:
                    status, retry_after = response.status_code, response.headers.get("retry-after")
                    try:
                        body = response.json()
                    except ValueError:
                        body = {"raw": response.text[:200]}
                with lock:
                    outcomes.append(
                        Outcome(
                            sent_in if sent_in == phase else "edge", status, name, body, retry_after
                        )
                    )
                time.sleep(0.01)

    def statuses(in_phase: str) -> list[int]:
        with lock:
            return [o.status for o in outcomes if o.phase == in_phase]

    def seen(in_phase: str) -> int:
        return len(statuses(in_phase))

    with LiveServer(settings) as base:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            # Each phase lasts until its answers are in (two a client), not a fixed time.
            wait_for(lambda: seen("up"), 60, "answers while up", until=lambda n: n >= 8)
            phase = "edge"  # a request racing a switch counts for neither side
            proxy.stop()
            phase = "down"
            wait_for(lambda: seen("down"), 60, "answers while down", until=lambda n: n >= 8)
            phase = "edge"
            proxy.start()
            phase = "back"
            wait_for(
                lambda: statuses("back"),
                60,
                "10 writes in a row after the outage",
                until=lambda back: len(back) > 10 and set(back[-10:]) == {201},
            )
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)

    by_phase = {p: [o for o in outcomes if o.phase == p] for p in ("up", "down", "back")}
    assert not [o for o in by_phase["up"] if o.status != 201]
    assert by_phase["down"], "no request was made while the database was down"
    # While down: every answer is 503 with Retry-After and a JSON reason; never a 500.
    for o in by_phase["down"]:
        assert o.status == 503, o
        assert o.retry_after and int(o.retry_after) > 0, o
        assert o.body["code"] == "unavailable" and "database" in o.body["detail"], o
    assert not [o for o in outcomes if o.status >= 500 and o.status != 503], outcomes
    assert not [o for o in outcomes if o.status == 0], outcomes  # no dropped HTTP connection
    # Back: it recovers by itself (pool pre-ping drops the dead connections).
    back = by_phase["back"]
    assert len(back) > 10 and all(o.status == 201 for o in back[-10:]), back[-10:]

    # No acknowledged write is lost: every 201 is in the database (read directly).
    acked = {o.name for o in outcomes if o.status == 201}
    with psycopg.connect(direct_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        rows = conn.execute(
            "SELECT name FROM models WHERE name LIKE 'pgfault-%%' AND name = ANY(%s)",
            (list(acked),),
        ).fetchall()
    assert {r[0] for r in rows} == acked
    assert len(acked) > 10
    print(
        "outage:",
        {p: len(v) for p, v in by_phase.items()},
        "503s:",
        sum(o.status == 503 for o in outcomes),
        "acked:",
        len(acked),
    )
