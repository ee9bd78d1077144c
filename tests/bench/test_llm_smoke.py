"""bench.llm at its tiny scale: a tiny llama through the fine-tune, the re-fine-tune and
two methods; every metric in range, the JSON and the section written. No timing asserts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import llm


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


UNIT = {"model_utility", "forget_prob", "forget_rouge", "extraction_strength", "mia_loss"}


def test_llm_tiny_scale(tmp_path: Path) -> None:
    page, results = tmp_path / "BENCHMARKS.md", tmp_path / "llm.json"
    out = llm.main(
        ["--scale", "tiny", "--methods", "gradient_ascent,npo,gradient_ascent@gentle",
         "--method-params", json.dumps({"gradient_ascent@gentle": {"lr": 1e-6}}),
         "--epochs", "4", "--markdown", str(page), "--json", str(results)]
    )  # fmt: skip
    [table] = out["tables"]
    rows = {row.name: row for row in table["rows"]}
    assert list(rows) == [
        "fine-tune", "retrain", "gradient_ascent", "npo", "gradient_ascent@gentle"
    ]  # fmt: skip
    assert table["counts"]["forget_records"] == 3  # 10 % of 10 people, 3 facts each
    for row in rows.values():
        assert row.error is None and row.seconds > 0
        for key in UNIT | {f"mia_{a}" for a in ("zlib", "min_k", "min_k_pp")}:
            assert 0.0 <= row.metrics[key] <= 1.0, (row.name, key, row.metrics[key])
        assert 0.0 <= row.metrics["forget_quality"] <= 1.0
        assert row.metrics["relearn_prob_after"] >= 0.0
    assert rows["retrain"].metrics["forget_quality"] == 1.0
    # gradient ascent pushes the forget answers' probability below the fine-tune's
    assert rows["gradient_ascent"].metrics["forget_prob"] < rows["fine-tune"].metrics["forget_prob"]
    # a variant is the same method with its own settings, measured beside the others: at a
    # hundredth of the lr gradient ascent leaves the forget answers nearly where they were
    gentle = rows["gradient_ascent@gentle"]
    assert "lr=1e-06" in gentle.note and "lr=1e-06" not in rows["gradient_ascent"].note
    assert (
        rows["gradient_ascent"].metrics["forget_prob"]
        < gentle.metrics["forget_prob"]
        <= rows["fine-tune"].metrics["forget_prob"] + 1e-3
    )
    saved = json.loads(results.read_text())
    assert saved["scale"] == "tiny" and len(saved["tables"][0]["rows"]) == 5
    text = page.read_text()
    assert "<!-- llm:start -->" in text and "<!-- llm-tiny:start -->" in text
    assert "| `npo` |" in text and "| `gradient_ascent@gentle` |" in text
    assert "Goal (issue 15" in text
    # a saved results file renders to the same section (how GPU results are reported)
    again = llm.main(["--report", str(results), "--markdown", str(tmp_path / "again.md")])
    assert again["markdown"] == out["markdown"]
