"""bench.diffusion at its smallest scale: rows for the original, the retrain and each
method, numbers in range, and a section written between its markers. No timing asserts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import diffusion


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_diffusion_ci_scale(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = diffusion.main(
        ["--scale", "ci", "--scenarios", "mnist", "--methods", "esd,uno", "--markdown", str(page)]
    )
    [result] = out["results"]
    rows = {row.name: row for row in result["rows"]}
    assert list(rows) == ["original", "retrain", "esd", "uno"]
    for row in rows.values():
        e = row.evaluation
        assert 0.0 <= e["forget_rate"] <= 1.0 and 0.0 <= e["retain_accuracy"] <= 1.0
        assert row.seconds > 0 and row.saved_bytes > 0
        assert row.attack is not None and 0.0 <= row.attack["attack_success_rate"] <= 1.0
    assert rows["esd"].saved_bytes < rows["retrain"].saved_bytes  # a delta, not a checkpoint
    assert 0.0 <= result["judge"]["heldout_accuracy"] <= 1.0
    text = page.read_text()
    assert "<!-- diffusion-mnist:start -->" in text and "| `uno` |" in text
    assert "Goals" in text and "Robustness" in text
