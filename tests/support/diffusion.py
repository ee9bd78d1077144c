"""Tiny diffusion models and lenient deletion policies for REST-level tests."""

from __future__ import annotations

from typing import Any

# A few-step model is noise to any judge: lenient thresholds so the approximate path
# passes in these tests; the thresholds themselves are unit-tested.
LENIENT = {
    "thresholds": {"max_forget_rate": 1.0, "max_retain_drop": 1.0},
    "judge": {"samples_per_class": 4, "num_inference_steps": 3, "real_images": 40},
}
TINY_TRAIN = {"steps": 4, "batch_size": 8, "lr_warmup_steps": 1}
TINY8 = {
    "family": "ddpm",
    "num_classes": 4,
    "sample_size": 8,
    "block_out_channels": [8, 16],
    "attention_levels": [False, False],
    "norm_num_groups": 4,
}
TINY_T2I = {
    "family": "text2image",
    "num_classes": 4,
    "sample_size": 8,
    "block_out_channels": [8, 16],
    "cross_attention_levels": [False, True],
    "norm_num_groups": 4,
    "attention_heads": 2,
    "max_prompt_tokens": 12,
    "caption_templates": ["a photo of {name}"],
}


def judged_attempt(item: dict[str, Any], method: str) -> dict[str, Any]:
    """The approximate run of a concept item, judged cell by cell: one forget and one
    retain check per (judge, sampler setting), at least 2 judges x 2 settings.

    A few-step model is noise to every judge, so whether the original showed the class
    to any of them (and so whether a forget check is informative) is chance: the item
    ends either certified with ``method`` or with the exact fallback, the judged attempt
    kept on its record either way. Returns that attempt."""
    verdict = item["verdict"]
    attempt = verdict["attempts"][0]
    assert attempt["method"] == method and not attempt["exact"], attempt
    checks = attempt["checks"]
    assert {c["check"] for c in checks} == {
        "forget_rate <= max_forget_rate",
        "retain_accuracy >= original - max_retain_drop",
    }
    cells = {(c["judge"], c["sampler"]) for c in checks}
    assert len({j for j, _ in cells}) >= 2 and len({s for _, s in cells}) >= 2, cells
    assert len(checks) == 2 * len(cells)
    assert {c["judge"] for c in attempt["evaluation"]["cells"]} == {j for j, _ in cells}
    if attempt["passed"]:
        assert item["method"] == method and verdict["passed"] and not verdict["exact"]
    else:
        assert attempt["reason"], attempt
        assert item["method"] == "retrain" and verdict["passed"] and verdict["exact"]
    return attempt
