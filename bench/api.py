"""API throughput and latency, as ratios to a bare FastAPI endpoint in the same run.

    .venv/bin/python bench/api.py [--concurrency 50] [--seconds 15]

Starts, on this machine: a fresh PostgreSQL database, a Redis database, the Expunge API
(one uvicorn process) and a bare FastAPI app (one uvicorn process); drives both with the
same asyncio client at a fixed concurrency; then starts one worker and measures the time
from POST /jobs to the job running on an idle worker. Writes its section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import markdown_table, write_section  # noqa: E402
from bench.services import (  # noqa: E402
    ADMIN_KEY,
    WorkerProcess,
    free_port,
    postgres_database,
    redis_database,
    settings_env,
    wait_for,
)
from core.settings import Settings  # noqa: E402

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def serve(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for(
        lambda: httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1),
        60,
        lambda: f"{app} to start: {log.read_text()}",
        until=lambda _: True,  # any answer: it serves
        ignore=(httpx.HTTPError,),
    )
    return proc


async def hammer(
    url: str, body: dict[str, Any], concurrency: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=HEADERS, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                response = await client.post(url, json=body)
                latencies.append(time.perf_counter() - start)
                if response.status_code >= 400:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "requests": float(len(latencies)),
        "errors": float(errors),
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def has_torch(pid: int) -> bool:
    return "libtorch" in Path(f"/proc/{pid}/maps").read_text()


def time_to_running(api: str, body: dict[str, Any], samples: int) -> list[float]:
    """Submit one job at a time to an idle worker; server-side created_at → started_at."""
    delays = []
    with httpx.Client(base_url=api, headers=HEADERS, timeout=30) as client:
        for _ in range(samples):
            job = client.post("/api/v1/jobs", json=body).json()
            while True:
                current = client.get(f"/api/v1/jobs/{job['id']}").json()
                if current["state"] in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(0.05)
            created = datetime.fromisoformat(current["created_at"])
            started = datetime.fromisoformat(current["started_at"])
            delays.append((started - created).total_seconds() * 1e3)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--no-write", action="store_true", help="Print only")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="expunge-bench-"))
    with postgres_database() as database_url, redis_database() as broker_url:
        settings = Settings(
            env="test",
            home=tmp / "home",
            database_url=database_url,
            broker_url=broker_url,
            storage_url=f"file://{tmp / 'objects'}",
            bootstrap_admin_key=ADMIN_KEY,
        )
        from core import migrate

        migrate.upgrade(settings)
        # Throughput is what is measured here, not the per-key limits.
        env = {**settings_env(settings), "EXPUNGE_RATE_LIMIT_ENABLED": "false"}
        api_port, bare_port = free_port(), free_port()
        api = serve("api.main:app", api_port, env, tmp / "api.log")
        bare = serve("bench.bare_app:app", bare_port, {}, tmp / "bare.log")
        worker = None
        try:
            base = f"http://127.0.0.1:{api_port}"
            with httpx.Client(base_url=base, headers=HEADERS, timeout=120) as client:
                dataset = client.post(
                    "/api/v1/datasets", json={"name": "bench-digits", "source": {"name": "digits"}}
                ).json()
                model = client.post(
                    "/api/v1/models",
                    json={
                        "name": "bench-mlp",
                        "architecture": {
                            "name": "mlp",
                            "num_classes": 10,
                            "input_size": [8, 8],
                            "width": 16,
                        },
                    },
                ).json()
            body = {
                "kind": "train",
                "model_id": model["id"],
                "dataset_id": dataset["id"],
                "params": {"max_train_samples": 16, "epochs": 1},
            }
            # Warm both servers, then measure them one after the other with the same client.
            asyncio.run(hammer(f"http://127.0.0.1:{bare_port}/jobs", body, args.concurrency, 2))
            asyncio.run(hammer(f"{base}/api/v1/jobs", body, args.concurrency, 2))
            bare_stats = asyncio.run(
                hammer(f"http://127.0.0.1:{bare_port}/jobs", body, args.concurrency, args.seconds)
            )
            api_stats = asyncio.run(
                hammer(f"{base}/api/v1/jobs", body, args.concurrency, args.seconds)
            )
            api_rss, api_torch = peak_rss_mb(api.pid), has_torch(api.pid)
            # Drain what the load queued, then time submissions to an idle worker.
            subprocess.run(
                ["redis-cli", "-u", settings.broker_url, "FLUSHDB"],
                check=False,
                capture_output=True,
            )
            with httpx.Client(base_url=base, headers=HEADERS) as client:
                for _ in range(10_000):
                    queued = client.get(
                        "/api/v1/jobs", params={"state": "queued", "limit": 200}
                    ).json()
                    if not queued["data"]:
                        break
                    for job in queued["data"]:
                        client.post(f"/api/v1/jobs/{job['id']}/cancel")
            worker = WorkerProcess(settings, tmp / "worker.log").wait_ready()
            delays = time_to_running(base, body, args.latency_samples)
        finally:
            for proc in (api, bare):
                proc.terminate()
                proc.wait(timeout=20)
            if worker is not None:
                worker.stop()

    ratio = api_stats["rps"] / bare_stats["rps"]
    rows = [
        [
            "bare FastAPI (same client)",
            f"{bare_stats['rps']:.0f}",
            f"{bare_stats['p50_ms']:.1f}",
            f"{bare_stats['p99_ms']:.1f}",
            f"{bare_stats['errors']:.0f}",
            "1.00",
        ],
        [
            "Expunge POST /api/v1/jobs",
            f"{api_stats['rps']:.0f}",
            f"{api_stats['p50_ms']:.1f}",
            f"{api_stats['p99_ms']:.1f}",
            f"{api_stats['errors']:.0f}",
            f"{ratio:.2f}",
        ],
    ]
    table = markdown_table(
        ["endpoint", "req/s", "p50 ms", "p99 ms", "errors", "throughput ratio"], rows
    )
    median_delay = statistics.median(delays)
    goals = [
        f"- Throughput ratio to the bare endpoint: **{ratio:.2f}** (goal ≥ 0.25): "
        f"{'met' if ratio >= 0.25 else 'NOT met'}.",
        f"- p99 at {args.concurrency} concurrent clients: **{api_stats['p99_ms']:.0f} ms** "
        f"(goal < 50 ms): {'met' if api_stats['p99_ms'] < 50 else 'NOT met'}.",
        f"- POST /jobs → running on an idle worker (Redis broker), median of {len(delays)}: "
        f"**{median_delay:.0f} ms**, p90 {sorted(delays)[int(len(delays) * 0.9)]:.0f} ms "
        f"(goal < 200 ms): {'met' if median_delay < 200 else 'NOT met'}.",
        f"- API process peak RSS under this load: **{api_rss:.0f} MB** (goal < 300 MB); "
        f"torch loaded in the API process: **{'yes' if api_torch else 'no'}**.",
    ]
    body_md = (
        f"`python bench/api.py --concurrency {args.concurrency} --seconds {args.seconds:g}` — "
        "PostgreSQL + Redis on this machine, one uvicorn process each for Expunge and the bare "
        f"app, one asyncio httpx client process driving {args.concurrency} concurrent "
        "connections (the client shares the 2 cores, so absolute numbers are low; the ratio "
        f"is the measurement). Load average when it finished: "
        f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())} (1/5/15 min).\n\n"
        + table
        + "\n\n"
        + "\n".join(goals)
        + "\n"
    )
    print(body_md)
    if not args.no_write:
        write_section("api", "## API: job submission\n\n" + body_md)


if __name__ == "__main__":
    main()
