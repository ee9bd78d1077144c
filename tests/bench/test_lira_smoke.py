"""The strong-test benchmark at its smallest scale: every row present, numbers in range,
its own section of the page written. No rate asserts: two seeds say nothing about 95 %."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import lira


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_lira_ci_scale(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = lira.main(["--scale", "ci", "--markdown", str(page)])
    results = out["results"]
    assert set(results) == {"original", "retrain", *lira.LIRA_TUNED}
    for name, runs in results.items():
        assert len(runs) == out["scale"].seeds
        for run in runs:
            assert run["passed"] in (0.0, 1.0), name
            for key in ("tpr", "auc", "low", "UA", "TA"):
                assert 0.0 <= run[key] <= 1.0, (name, key, run[key])
            assert run["seconds"] > 0 or name == "original"
    for n, sides in out["power"].items():
        assert n in out["scale"].power_sizes
        assert all(len(v) == out["scale"].seeds and set(v) <= {0.0, 1.0} for v in sides.values())
    markdown = out["markdown"]
    assert "forget samples | original flagged" in markdown
    for name in results:
        assert f"`{name}`" in markdown or f"**{name}**" in markdown, name
    assert "Goal (issue #13)" in markdown and "python -m bench.lira --scale ci" in markdown
    text = page.read_text()
    assert "<!-- lira:start -->" in text and "<!-- lira:end -->" in text
