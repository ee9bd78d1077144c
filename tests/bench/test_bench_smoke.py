"""Both benchmarks at their smallest scale: every method in the table, numbers in range.

No timing asserts: the CI machine is shared, and the benchmarks report ratios only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bench import forget_score, unlearning
from bench.report import write_section
from workers.engine.unlearning import METHODS


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _in_unit(value: float) -> bool:
    return 0.0 <= value <= 1.0


def test_unlearning_ci_scale(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = unlearning.main(["--scale", "ci", "--markdown", str(page)])
    markdown = out["markdown"]
    seen: set[str] = set()
    for setting in out["settings"]:
        assert setting.results["retrain"], f"no reference in {setting.title}"
        ref = setting.results["retrain"][0]
        assert ref["gap"] == 0.0
        for row, runs in setting.results.items():
            seen.add(unlearning.method_of(row))
            for r in runs:
                for key in ("UA", "RA", "TA", "MIA", "gap"):
                    assert _in_unit(r[key]), (setting.title, row, key, r[key])
                if row != "original":
                    assert r["seconds"] > 0 and r["speedup"] > 0
        if setting.kind == "classwise":
            assert ref["UA"] >= 0.9  # a retrained model never learned the class
        if setting.kind == "random":
            assert setting.results["original"][0]["RA"] > 0.5  # the original learned
    # Every registered method ran somewhere and has a row in the markdown.
    assert set(METHODS) <= seen
    for name in METHODS:
        assert f"| {name} |" in markdown or f"| {name} (" in markdown, name
    assert "### Goals" in markdown and "SISA" in markdown
    for run in out["sisa"]:
        for r in run.results:
            assert 0 < r["visit_fraction"] <= 1 and _in_unit(r["TA_sisa"])
    text = page.read_text()
    assert "<!-- unlearning:start -->" in text and "<!-- unlearning:end -->" in text


def test_forget_score_smallest(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    methods = ["finetune", "gradient_ascent", "neggrad_plus", "salun", "ssd"]
    out = forget_score.main(
        ["--models", "3", "--methods", ",".join(methods), "--markdown", str(page)]
    )
    assert set(methods) <= set(out["results"])
    assert "retrain (another N)" in out["results"]
    for name, r in out["results"].items():
        assert _in_unit(r["score"]) and _in_unit(r["forget_quality"]), name
        assert r["score"] <= r["forget_quality"] * r["ra_ratio"] * r["ta_ratio"] + 1e-9
        assert 0.5 < r["ra_ratio"] < 1.5 and 0.5 < r["ta_ratio"] < 1.5
        assert math.isfinite(r["median_epsilon"])
        assert f"| `{name}` |" in out["markdown"]
    assert "<!-- forget-score:start -->" in page.read_text()


def test_write_section_keeps_other_sections(tmp_path: Path) -> None:
    page = tmp_path / "B.md"
    write_section("a", "first", page)
    write_section("b", "second", page)
    write_section("a", "first again", page)
    text = page.read_text()
    assert "first again" in text and "second" in text and "first\n" not in text
    assert text.index("<!-- a:start -->") < text.index("<!-- b:start -->")
