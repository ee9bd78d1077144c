"""bench.text2image at its smallest scale: rows for the original, the retrain and every
prompt-capable method, numbers in range, and its section written between its markers
in a temporary page. No timing or quality asserts (the ci models are untrained)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench import text2image


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_text2image_ci_scale(tmp_path: Path) -> None:
    page = tmp_path / "BENCHMARKS.md"
    out = text2image.main(["--scale", "ci", "--scenarios", "mnist", "--markdown", str(page)])
    [result] = out["results"]
    methods = text2image.prompt_methods()
    assert {"esd", "uce"} <= set(methods)
    rows = {row.name: row for row in result["rows"]}
    assert list(rows) == ["original", "retrain", *methods]
    for row in rows.values():
        e = row.evaluation
        assert 0.0 <= e["forget_rate"] <= 1.0 and 0.0 <= e["retain_accuracy"] <= 1.0
        assert e["frechet_retain"] >= 0.0
        para = row.extra["paraphrase"]
        assert 0.0 <= para["forget_rate"] <= 1.0
        assert para["count"] == result["scale"].samples_per_class
        assert set(para["per_paraphrase"]) == {"a handwritten 0", "a drawing of the numeral zero"}
        assert row.seconds > 0 and row.saved_bytes > 0
        attack = row.attack
        assert attack is not None and attack["attack"] == "prompt_embedding"
        assert 0.0 <= attack["attack_success_rate"] <= 1.0
        assert attack["samples_per_class"] == result["scale"].attack_samples
    # The erased concept is the erased class's captions under every training template,
    # mapped to the empty prompt; every other caption is preserved.
    concept = result["concept"]
    assert concept.prompts == ["a photo of the digit zero", "the number zero"]
    assert concept.anchor == "" and len(concept.preserve) == 9 * 2
    # uce edits only the cross-attention key/value projections: a delta, not a checkpoint.
    assert rows["uce"].saved_bytes < rows["retrain"].saved_bytes
    assert rows["uce"].extra["method_metrics"]["edited_tensors"] > 0
    assert 0.0 <= result["judge"]["heldout_accuracy"] <= 1.0
    text = page.read_text()
    assert text.count("<!-- diffusion-text2image:start -->") == 1
    assert "<!-- diffusion-text2image:end -->" in text
    for name in ["retrain", *methods]:
        assert f"| `{name}` |" in text
    assert "paraphrase forget %" in text and "attack success %" in text
    assert "Goals" in text and "Robustness: the most robust method here is" in text
    assert out["section"].strip() in text
