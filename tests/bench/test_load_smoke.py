"""bench/load.py at its smallest: a few seconds of load, a few hundred queued rows.

No timing asserts (the machine is shared); it checks the run is complete and clean.
"""

from __future__ import annotations

import math
from pathlib import Path

from bench import load


def test_load_smallest(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = load.main(
        [
            "--clients", "3",
            "--seconds", "3",
            "--drain-seconds", "1",
            "--queued", "300",
            "--baseline", "50",
            "--page-repeats", "3",
            "--markdown", str(page),
        ]
    )  # fmt: skip
    endpoints = out["load"]["endpoints"]
    assert {"POST /jobs", "GET /jobs"} <= set(endpoints)
    for name, stats in endpoints.items():
        assert stats["requests"] > 0, name
        assert stats["5xx"] == 0, (name, stats)
        assert stats["429"] == 0, (name, stats)  # the default limits never bite here
    assert out["load"]["api_alive"]
    submitted = endpoints["POST /jobs"]["requests"] - endpoints["POST /jobs"]["4xx"]
    assert sum(out["load"]["states_after_load"].values()) == submitted
    pages = out["pages"]
    assert pages["total"] == 300
    for name, ms in pages["large"].items():
        assert math.isfinite(ms) and ms > 0 and pages["small"][name] > 0, name
        assert "Scan" in pages["plans"][name]["plan"], name
        assert pages["plans"][name]["db_ms"] >= 0, name
    text = page.read_text()
    assert "<!-- load:start -->" in text and "| `POST /jobs` |" in text
