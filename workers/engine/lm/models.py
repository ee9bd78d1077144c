"""Building, loading and saving Hugging Face causal language models.

Tiny models and a byte-level tokenizer let tests train in seconds without a download.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["TINY_LLAMA_SIZES", "byte_tokenizer", "tiny_llama"]

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
    import torch

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
