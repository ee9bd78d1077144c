"""The batching benchmark at its smallest: both arms run, the counts and ratio are sane.

No timing asserts (the machine is shared); only that one batched job replaces N.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import batching


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_batching_tiny(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = batching.main(
        [
            "--requests", "2", "--writers", "4", "--test-size", "100", "--epochs", "1",
            "--markdown", str(page),
        ]
    )  # fmt: skip
    assert out["jobs_one_by_one"] == 2 and out["jobs_batched"] == 1
    assert out["one_by_one_seconds"] > 0 and out["batched_seconds"] > 0
    assert 0.0 <= out["TA_batched"] <= 1.0
    text = page.read_text()
    assert "## Deletion batching" in text and "| batched | 1 |" in text
