"""Model folders: safetensors round trip, refusals before anything runs, LoRA adapters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from contracts.causal_lm import LMArchitecture, LoraParams
from tests.support.lm import tiny_pair
from workers.engine.lm.models import (
    LMModelError,
    RemoteCodeRefused,
    TokenizerMismatch,
    TokenizerMissing,
    UnsafeWeights,
    attach_lora,
    build_base,
    byte_tokenizer,
    is_lora,
    load_adapter,
    load_folder,
    merge_lora,
    save_adapter,
    save_folder,
    tiny_llama,
)

torch.set_num_threads(1)


def logits(model, tokenizer, text: str = "Question: Who?\nAnswer: Ada") -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    model, tokenizer = tiny_pair(seed=3)
    return save_folder(model, tokenizer, tmp_path / "m")


def test_folder_round_trip(tmp_path: Path) -> None:
    model, tokenizer = tiny_pair(seed=3)
    folder = save_folder(model, tokenizer, tmp_path / "m")
    assert (folder / "model.safetensors").is_file()
    loaded, loaded_tok = load_folder(folder)
    assert len(loaded_tok) == len(tokenizer)
    assert loaded_tok("héllo")["input_ids"] == tokenizer("héllo")["input_ids"]
    assert torch.equal(logits(model, tokenizer), logits(loaded, loaded_tok))


def test_tiny_llama_is_seeded() -> None:
    a, tok = tiny_pair(seed=1)
    b, _ = tiny_pair(seed=1)
    c, _ = tiny_pair(seed=2)
    assert torch.equal(logits(a, tok), logits(b, tok))
    assert not torch.equal(logits(a, tok), logits(c, tok))


def test_build_base_uses_the_architecture_sizes() -> None:
    model, _ = build_base(LMArchitecture(base="tiny-llama", hidden_size=32, num_hidden_layers=1))
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    with pytest.raises(LMModelError):
        build_base(LMArchitecture(base="smollm2-135m"))


def test_pickle_weights_refused(saved: Path) -> None:
    (saved / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(UnsafeWeights, match="pytorch_model.bin"):
        load_folder(saved)


def test_folder_without_safetensors_refused(saved: Path) -> None:
    (saved / "model.safetensors").unlink()
    with pytest.raises(UnsafeWeights, match="safetensors"):
        load_folder(saved)


@pytest.mark.parametrize("name", ["config.json", "tokenizer_config.json"])
def test_remote_code_refused(saved: Path, name: str) -> None:
    config = json.loads((saved / name).read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (saved / name).write_text(json.dumps(config))
    with pytest.raises(RemoteCodeRefused, match="auto_map"):
        load_folder(saved)


def test_python_files_refused(saved: Path) -> None:
    (saved / "modeling_evil.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(RemoteCodeRefused, match="modeling_evil.py"):
        load_folder(saved)


def test_missing_tokenizer_refused(saved: Path) -> None:
    (saved / "tokenizer.json").unlink()
    with pytest.raises(TokenizerMissing):
        load_folder(saved)


def test_tokenizer_larger_than_embeddings_refused(tmp_path: Path) -> None:
    tokenizer = byte_tokenizer()
    model = tiny_llama(100, seed=0)  # 100 rows for a 259-token tokenizer
    folder = save_folder(model, tokenizer, tmp_path / "m")
    with pytest.raises(TokenizerMismatch, match="259 tokens"):
        load_folder(folder)


def test_lora_adapter_round_trip_and_merge(tmp_path: Path) -> None:
    model, tokenizer = tiny_pair(seed=4)
    lora = attach_lora(model, LoraParams(r=4, alpha=8), seed=1)
    assert is_lora(lora)
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    # LoRA's B starts at zero; move it so the adapter changes the output.
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    expected = logits(lora, tokenizer)
    folder = save_adapter(lora, tmp_path / "adapter")
    # Only the adapter is written: its config and safetensors (peft adds a README).
    names = {p.name for p in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names
    assert names <= {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    base, _ = tiny_pair(seed=4)
    before = logits(base, tokenizer)
    reloaded = load_adapter(base, folder)
    torch.testing.assert_close(logits(reloaded, tokenizer), expected)
    assert not torch.allclose(before, expected)
    merged = merge_lora(reloaded)
    assert not is_lora(merged)
    torch.testing.assert_close(logits(merged, tokenizer), expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(LMModelError):
        save_folder(lora, tokenizer, tmp_path / "full")
