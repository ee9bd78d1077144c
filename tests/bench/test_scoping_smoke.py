"""The scoping benchmark at a tiny size: it builds, resolves, and both paths agree.

No timing asserts (the machine is shared); the full-size numbers live in docs/BENCHMARKS.md.
"""

from __future__ import annotations

from pathlib import Path

from bench import scoping


def test_scoping_tiny(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = scoping.main(
        [
            "--samples", "4000", "--versions", "20", "--layouts", "2", "--models", "2",
            "--runs", "2", "--markdown", str(page),
        ]
    )  # fmt: skip
    [layout] = out["layouts"]
    # Ten samples per subject, about nine of them in the train split.
    assert layout["samples_hit"] == scoping.SAMPLES_PER_SUBJECT
    # The half of a chain trained on the subject's dataset is hit (a random half of the
    # split misses all of a subject's samples with odds of about 1 in 500), and the run
    # itself checked that the block index and whole masks agree.
    assert layout["direct"] >= 1 and layout["direct"] + layout["descendants"] >= 5
    assert layout["resolve_ms"] > 0 and layout["every_mask_ms"] > 0
    text = page.read_text()
    assert "<!-- deletion-scoping:start -->" in text and "## Deletion scoping" in text
