"""The bring-your-own-classifier benchmark at a tiny size: a timm model, every row, a page."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import byo_classifier


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_byo_classifier_tiny(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    argv = ["--model", "timm:test_resnet", "--train", "60", "--test", "30", "--epochs", "1"]
    results = byo_classifier.main([*argv, "--size", "16", "--markdown", str(page)])
    assert set(results) == {"original", *byo_classifier.METHODS}
    assert results["retrain"]["avg_gap"] == 0.0
    for row, metrics in results.items():
        assert all(0.0 <= metrics[k] <= 1.0 for k in ("UA", "RA", "TA", "MIA")), (row, metrics)
    text = page.read_text()
    assert "<!-- byo_classifier:start -->" in text and "| ssd |" in text
