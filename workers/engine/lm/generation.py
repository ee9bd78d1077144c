"""Completions from a causal LM: greedy (deterministic) or sampled (seeded)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from contracts.causal_lm import LMDecoding
from workers.engine.evaluation import resolve_device
from workers.engine.lm.data import LMDataError, encode_prompts, prompt_of
from workers.engine.lm.models import LanguageModel

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["generate"]


@torch.no_grad()
def generate(
    model: LanguageModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    params: LMDecoding | None = None,
) -> list[str]:
    """One completion per prompt, without the prompt, special tokens or outer whitespace.

    With ``params.template`` each prompt is asked as a question in ``prompt_of``'s
    template. Prompts are left-padded in batches so every row continues from its own
    last token. Sampling is seeded per call and leaves the global torch RNG as it was;
    the model is moved to ``params.device`` and its train/eval mode restored afterwards.
    """
    params = params or LMDecoding()
    if not prompts:
        raise LMDataError("no prompts to complete")
    device = resolve_device(params.device)
    texts = [prompt_of(p) if params.template else p for p in prompts]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    positions = getattr(model.config, "max_position_embeddings", None)
    # Leave room for the completion inside the model's context.
    keep = None if positions is None else max(1, positions - params.max_new_tokens)
    was_training = model.training
    model.to(device)
    model.eval()
    outputs: list[str] = []
    try:
        with torch.random.fork_rng(devices=[] if device.type != "cuda" else [device]):
            torch.manual_seed(params.seed)
            for start in range(0, len(texts), params.batch_size):
                batch = encode_prompts(tokenizer, texts[start : start + params.batch_size], keep)
                batch = {k: v.to(device) for k, v in batch.items()}
                sampled = params.decoding == "sampled"
                extra = {"temperature": params.temperature, "top_p": params.top_p, "top_k": 0}
                tokens = model.generate(
                    **batch,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=sampled,
                    pad_token_id=pad,
                    eos_token_id=eos,
                    **(extra if sampled else {"temperature": None, "top_p": None}),
                )
                new = tokens[:, batch["input_ids"].shape[1] :]
                outputs.extend(
                    text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True)
                )
    finally:
        model.train(was_training)
    return outputs
