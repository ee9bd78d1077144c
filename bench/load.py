"""Load: concurrent REST clients against a real server while a worker runs jobs.

    .venv/bin/python bench/load.py [--clients 16] [--seconds 20] [--queued 10000]

Two parts, each on its own fresh PostgreSQL database, a Redis database and one uvicorn
process for the API (as bench/api.py sets them up):

1. Mixed load. ``--clients`` asyncio clients, each with its own engineer key, submit
   small training jobs, list jobs (plain, filtered, next page) and read single jobs for
   ``--seconds`` while one worker process runs the jobs. Reported per endpoint:
   throughput, p50/p99 latency, 4xx/429/5xx counts (target: zero 5xx). Then the queue
   backlog is watched for ``--drain-seconds`` with the clients stopped: its drain rate
   is the worker's real throughput on this machine.
2. Many queued jobs. ``--baseline`` queued job rows are inserted straight into the
   database and ``GET /jobs`` pages are timed (first page, a middle page by cursor, the
   last page, and a filter that matches only the oldest rows); then rows are added up
   to ``--queued`` and the same pages are timed again. The ratio shows whether cursor
   pagination stays flat; the query plans show which index each page uses.

Writes its section of docs/BENCHMARKS.md (``<!-- load:start -->``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import serve  # noqa: E402
from bench.report import BENCHMARKS_MD, markdown_table, write_section  # noqa: E402
from bench.services import (  # noqa: E402
    ADMIN_KEY,
    WorkerProcess,
    free_port,
    postgres_database,
    redis_database,
    settings_env,
)
from core.settings import Settings  # noqa: E402

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
API = "/api/v1"
PAGE = 50
# What one client does per step, with weights (a dashboard-heavy mix: mostly reads).
MIX = (
    ("POST /jobs", 2),
    ("GET /jobs", 3),
    ("GET /jobs?state=queued", 1),
    ("GET /jobs?cursor=", 1),
    ("GET /jobs/{id}", 3),
)


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, seconds: float, status: int) -> None:
        self.latencies.append(seconds)
        self.statuses[status] += 1

    def summary(self, elapsed: float) -> dict[str, float]:
        lat = sorted(self.latencies) or [float("nan")]
        return {
            "requests": float(len(self.latencies)),
            "rps": len(self.latencies) / elapsed,
            "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
            "4xx": float(sum(n for s, n in self.statuses.items() if 400 <= s < 500 and s != 429)),
            "429": float(self.statuses.get(429, 0)),
            "5xx": float(sum(n for s, n in self.statuses.items() if s >= 500)),
        }


def pg_url(database_url: str) -> str:
    return database_url.replace("postgresql+psycopg://", "postgresql://")


def job_states(database_url: str) -> dict[str, int]:
    with psycopg.connect(pg_url(database_url)) as conn:
        rows = conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
    return {state: count for state, count in rows}


def make_settings(home: Path, database_url: str, broker_url: str) -> Settings:
    return Settings(
        env="test",
        home=home,
        database_url=database_url,
        broker_url=broker_url,
        storage_url=f"file://{home / 'objects'}",
        bootstrap_admin_key=ADMIN_KEY,
    )


# --------------------------------------------------------------------------- mixed load


async def client_loop(
    base: str, key: str, body: dict[str, Any], stop: float, seed: int, stats: dict[str, Stats]
) -> None:
    rng = random.Random(seed)
    names = [name for name, _ in MIX]
    weights = [weight for _, weight in MIX]
    mine: list[str] = []
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        while time.perf_counter() < stop:
            name = rng.choices(names, weights)[0]
            if name == "GET /jobs/{id}" and not mine:
                name = "POST /jobs"
            if name == "GET /jobs?cursor=" and not cursor:
                name = "GET /jobs"
            start = time.perf_counter()
            if name == "POST /jobs":
                response = await client.post(f"{API}/jobs", json=body)
                if response.status_code == 201:
                    mine.append(response.json()["id"])
            elif name == "GET /jobs":
                response = await client.get(f"{API}/jobs", params={"limit": PAGE})
                if response.status_code == 200:
                    cursor = response.json()["next_cursor"]
            elif name == "GET /jobs?state=queued":
                response = await client.get(
                    f"{API}/jobs", params={"state": "queued", "limit": PAGE}
                )
            elif name == "GET /jobs?cursor=":
                response = await client.get(f"{API}/jobs", params={"cursor": cursor, "limit": PAGE})
                if response.status_code == 200:
                    cursor = response.json()["next_cursor"]
            else:
                response = await client.get(f"{API}/jobs/{rng.choice(mine)}")
            stats[name].add(time.perf_counter() - start, response.status_code)


async def drive(
    base: str, keys: list[str], body: dict[str, Any], seconds: float
) -> tuple[dict[str, Stats], float]:
    stats: dict[str, Stats] = defaultdict(Stats)
    started = time.perf_counter()
    stop = started + seconds
    await asyncio.gather(
        *(client_loop(base, key, body, stop, seed, stats) for seed, key in enumerate(keys))
    )
    return stats, time.perf_counter() - started


def watch_drain(database_url: str, seconds: float) -> dict[str, float]:
    """Backlog (queued + running) while the worker works and no one submits."""

    def backlog() -> int:
        states = job_states(database_url)
        return states.get("queued", 0) + states.get("running", 0)

    start_backlog, start = backlog(), time.perf_counter()
    finished_before = job_states(database_url).get("succeeded", 0)
    end_backlog = start_backlog
    while time.perf_counter() - start < seconds and end_backlog > 0:
        time.sleep(0.5)
        end_backlog = backlog()
    elapsed = time.perf_counter() - start
    finished = job_states(database_url).get("succeeded", 0) - finished_before
    return {
        "backlog_start": float(start_backlog),
        "backlog_end": float(end_backlog),
        "seconds": elapsed,
        "drain_per_s": (start_backlog - end_backlog) / elapsed if elapsed else 0.0,
        "succeeded_per_s": finished / elapsed if elapsed else 0.0,
    }


def mixed_load(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with postgres_database() as database_url, redis_database() as broker_url:
        settings = make_settings(tmp / "home-load", database_url, broker_url)
        from core import migrate

        migrate.upgrade(settings)
        port = free_port()
        api = serve("api.main:app", port, settings_env(settings), tmp / "api-load.log")
        worker = None
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, headers=ADMIN, timeout=120) as admin:
                dataset = admin.post(
                    f"{API}/datasets", json={"name": "load-digits", "source": {"name": "digits"}}
                ).json()
                model = admin.post(
                    f"{API}/models",
                    json={
                        "name": "load-mlp",
                        "architecture": {
                            "name": "mlp",
                            "num_classes": 10,
                            "input_size": [8, 8],
                            "width": 16,
                        },
                    },
                ).json()
                keys = [
                    admin.post(
                        f"{API}/keys", json={"name": f"load-{i}", "role": "engineer"}
                    ).json()["key"]
                    for i in range(args.clients)
                ]
            body = {
                "kind": "train",
                "model_id": model["id"],
                "dataset_id": dataset["id"],
                "params": {"max_train_samples": 16, "epochs": 1},
            }
            worker = WorkerProcess(settings, tmp / "worker-load.log").wait_ready()
            stats, elapsed = asyncio.run(drive(base, keys, body, args.seconds))
            backlog_after_load = job_states(database_url)
            drain = watch_drain(database_url, args.drain_seconds)
            api_alive = api.poll() is None
        finally:
            api.terminate()
            api.wait(timeout=20)
            if worker is not None:
                worker.stop()
            subprocess.run(
                ["redis-cli", "-u", settings.broker_url, "FLUSHDB"],
                check=False,
                capture_output=True,
            )
    return {
        "endpoints": {name: s.summary(elapsed) for name, s in stats.items()},
        "elapsed": elapsed,
        "states_after_load": backlog_after_load,
        "drain": drain,
        "api_alive": api_alive,
    }


# --------------------------------------------------------------------------- many queued


def insert_jobs(database_url: str, count: int, state: str = "queued") -> None:
    """Queued job rows as the API makes them, marked dispatched so no sweeper sends them."""
    now = datetime.now(UTC)
    rows = []
    for _ in range(count):
        job_id = f"job_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"
        rows.append((job_id, "train", state, "cpu", now, now))
    with psycopg.connect(pg_url(database_url)) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO jobs (id, kind, state, queue, params, spec, progress, metrics,"
                " artifacts, attempt, cancel_requested, created_at, dispatched_at)"
                " VALUES (%s, %s, %s, %s, '{}', '{}', 0, '{}', '[]', 0, false, %s, %s)",
                rows,
            )
        conn.execute("ANALYZE jobs")


def page_cursors(database_url: str) -> dict[str, dict[str, str]]:
    """The query of each timed page (the cursor is what the API hands back as next_cursor)."""
    with psycopg.connect(pg_url(database_url)) as conn:
        total = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]

        def id_at(offset: int) -> str:
            row = conn.execute(
                "SELECT id FROM jobs ORDER BY id DESC OFFSET %s LIMIT 1", (offset,)
            ).fetchone()
            return row[0]

        return {
            "first": {"limit": str(PAGE)},
            "middle (cursor)": {"limit": str(PAGE), "cursor": id_at(total // 2)},
            "last (cursor)": {"limit": str(PAGE), "cursor": id_at(max(total - PAGE - 1, 0))},
            "state=queued (nearly every row)": {"limit": str(PAGE), "state": "queued"},
            "state=succeeded (oldest rows only)": {"limit": str(PAGE), "state": "succeeded"},
        }


def time_pages(base: str, pages: dict[str, dict[str, str]], repeats: int) -> dict[str, float]:
    out = {}
    with httpx.Client(base_url=base, headers=ADMIN, timeout=60) as client:
        for name, params in pages.items():
            client.get(f"{API}/jobs", params=params)  # warm
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                response = client.get(f"{API}/jobs", params=params)
                samples.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"GET /jobs {params}: {response.status_code}")
            out[name] = statistics.median(samples) * 1e3
    return out


def plans(database_url: str, pages: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Each page's query (the SQL api/jobs/repository.py issues): its scans, and the
    database's own execution time (median of 5 EXPLAIN ANALYZE runs; no HTTP, no Python)."""
    out = {}
    with psycopg.connect(pg_url(database_url)) as conn:
        for name, params in pages.items():
            where, values = [], []
            if "state" in params:
                where.append("state = %s")
                values.append(params["state"])
            if "cursor" in params:
                where.append("id < %s")
                values.append(params["cursor"])
            sql = "SELECT * FROM jobs"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += f" ORDER BY id DESC LIMIT {PAGE + 1}"
            times = []
            for _ in range(5):
                lines = [r[0] for r in conn.execute("EXPLAIN ANALYZE " + sql, values).fetchall()]
                done = next(ln for ln in lines if ln.startswith("Execution Time"))
                times.append(float(done.split(":")[1].split()[0]))
            scans = [ln.strip().lstrip("-> ").split("  ")[0] for ln in lines if "Scan" in ln]
            out[name] = {"plan": "; ".join(scans) or lines[0], "db_ms": statistics.median(times)}
    return out


def many_queued(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with postgres_database() as database_url, redis_database() as broker_url:
        settings = make_settings(tmp / "home-pages", database_url, broker_url)
        from core import migrate

        migrate.upgrade(settings)
        port = free_port()
        api = serve("api.main:app", port, settings_env(settings), tmp / "api-pages.log")
        try:
            base = f"http://127.0.0.1:{port}"
            insert_jobs(database_url, 10, state="succeeded")  # the oldest rows
            insert_jobs(database_url, args.baseline - 10)
            small_pages = page_cursors(database_url)
            small = time_pages(base, small_pages, args.page_repeats)
            small_plans = plans(database_url, small_pages)
            insert_jobs(database_url, args.queued - args.baseline)
            large_pages = page_cursors(database_url)
            large = time_pages(base, large_pages, args.page_repeats)
            plan = plans(database_url, large_pages)
            total = sum(job_states(database_url).values())
        finally:
            api.terminate()
            api.wait(timeout=20)
    return {
        "small": small,
        "large": large,
        "plans_small": small_plans,
        "plans": plan,
        "total": total,
    }


# --------------------------------------------------------------------------- report


def render(args: argparse.Namespace, load: dict[str, Any], pages: dict[str, Any]) -> str:
    rows = []
    for name, _ in MIX:
        s = load["endpoints"].get(name)
        if s is None:
            continue
        rows.append(
            [
                f"`{name}`",
                f"{s['requests']:.0f}",
                f"{s['rps']:.1f}",
                f"{s['p50_ms']:.0f}",
                f"{s['p99_ms']:.0f}",
                f"{s['4xx']:.0f}",
                f"{s['429']:.0f}",
                f"{s['5xx']:.0f}",
            ]
        )
    total_5xx = sum(s["5xx"] for s in load["endpoints"].values())
    total_rps = sum(s["rps"] for s in load["endpoints"].values())
    drain = load["drain"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(load["states_after_load"].items()))
    load_table = markdown_table(
        ["endpoint", "requests", "req/s", "p50 ms", "p99 ms", "4xx", "429", "5xx"], rows
    )
    page_rows = []
    for name in pages["small"]:
        small, large = pages["small"][name], pages["large"][name]
        page_rows.append(
            [
                name,
                f"{small:.1f}",
                f"{large:.1f}",
                f"{large / small:.2f}",
                f"{pages['plans_small'][name]['db_ms']:.2f} → {pages['plans'][name]['db_ms']:.2f}",
                pages["plans"][name]["plan"],
            ]
        )
    page_table = markdown_table(
        [
            "GET /jobs page",
            f"{args.baseline} jobs, ms",
            f"{pages['total']} jobs, ms",
            "ratio",
            "database time, ms",
            f"plan at {pages['total']} jobs",
        ],
        page_rows,
    )
    worst = max(pages["large"][n] / pages["small"][n] for n in pages["small"])
    scans = [n for n, plan in pages["plans"].items() if "Seq Scan" in plan["plan"]]
    plan_note = (
        f"At {pages['total']} rows these pages still read the whole table (Seq Scan): "
        + ", ".join(scans)
        + "."
        if scans
        else f"At {pages['total']} rows every page is an index scan that stops after one page."
    )
    return (
        f"`python bench/load.py --clients {args.clients} --seconds {args.seconds:g} "
        f"--queued {args.queued}` — PostgreSQL + Redis on this machine, one uvicorn process "
        "for the API, one worker process (solo pool, one torch thread) running the submitted "
        f"training jobs (digits, 16 samples, 1 epoch), {args.clients} asyncio clients in one "
        "process, each with its own engineer key (so the per-key rate limits apply as in "
        "production). **The machine is shared and noisy** (2 cores, other work running; load "
        f"average at the end {' / '.join(f'{x:.1f}' for x in os.getloadavg())}): read the "
        "5xx count and the ratios, not the absolute latencies.\n\n"
        f"### Mixed load, {load['elapsed']:.0f} s\n\n"
        + load_table
        + f"\n\n- All endpoints together: **{total_rps:.0f} req/s**; 5xx responses: "
        f"**{total_5xx:.0f}** (target 0): {'met' if total_5xx == 0 else 'NOT met'}; the API "
        f"process {'stayed up' if load['api_alive'] else 'DIED'}.\n"
        f"- Jobs by state when the clients stopped: {states} (the worker finished "
        f"{load['states_after_load'].get('succeeded', 0) / load['elapsed']:.2f} jobs/s while "
        "the clients ran: it shares the cores with the API, the clients and Postgres).\n"
        f"- Backlog drain with the clients stopped: {drain['backlog_start']:.0f} → "
        f"{drain['backlog_end']:.0f} queued/running in {drain['seconds']:.0f} s = "
        f"**{drain['drain_per_s']:.2f} jobs/s** ({drain['succeeded_per_s']:.2f} succeeded/s) "
        "with one worker.\n\n"
        f"### {pages['total']} queued jobs vs {args.baseline}\n\n"
        f"Median of {args.page_repeats} HTTP requests per page, limit {PAGE}; 10 `succeeded` "
        "jobs are the oldest rows, so that filter has to look past all the queued ones. The "
        "HTTP times carry this machine's noise; the database time (EXPLAIN ANALYZE of the "
        "same query, median of 5) is the part the table size could change.\n\n"
        + page_table
        + f"\n\n- Worst ratio: **{worst:.2f}** (flat pagination ≈ 1). {plan_note}\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--drain-seconds", type=float, default=15)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--page-repeats", type=int, default=30)
    parser.add_argument("--markdown", type=Path, default=BENCHMARKS_MD)
    parser.add_argument("--no-write", action="store_true", help="Print only")
    args = parser.parse_args(argv)
    if args.baseline <= 10 or args.queued <= args.baseline:
        parser.error("need 10 < --baseline < --queued")

    tmp = Path(tempfile.mkdtemp(prefix="expunge-load-"))
    load = mixed_load(args, tmp)
    pages = many_queued(args, tmp)
    body = render(args, load, pages)
    print(body)
    if not args.no_write:
        title = f"## Load: concurrent clients and a worker; {pages['total']} queued jobs"
        write_section("load", title + "\n\n" + body, args.markdown)
    return {"load": load, "pages": pages, "markdown": body}


if __name__ == "__main__":
    main()
