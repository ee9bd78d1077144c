"""Generation: greedy is deterministic, sampling is seeded, the template is the training one."""

from __future__ import annotations

import pytest
import torch

from contracts.causal_lm import LMDecoding
from tests.support.lm import tiny_pair
from workers.engine.lm.data import LMDataError, prompt_of
from workers.engine.lm.generation import generate

torch.set_num_threads(1)

PROMPTS = ["Where was Ada born?", "What is Bo's job?", "x"]


@pytest.fixture(scope="module")
def pair():
    return tiny_pair(seed=7)


def test_greedy_is_deterministic_and_batch_independent(pair) -> None:
    model, tokenizer = pair
    params = LMDecoding(max_new_tokens=12, batch_size=3)
    first = generate(model, tokenizer, PROMPTS, params)
    assert first == generate(model, tokenizer, PROMPTS, params)
    # Left padding: a prompt completes the same alone as in a batch with longer ones.
    one_by_one = generate(model, tokenizer, PROMPTS, params.model_copy(update={"batch_size": 1}))
    assert first == one_by_one
    assert len(first) == 3 and all(isinstance(text, str) for text in first)


def test_template_is_the_training_prompt(pair) -> None:
    model, tokenizer = pair
    params = LMDecoding(max_new_tokens=6)
    templated = generate(model, tokenizer, PROMPTS[:1], params)
    raw = generate(
        model, tokenizer, [prompt_of(PROMPTS[0])], params.model_copy(update={"template": False})
    )
    assert templated == raw


def test_sampling_is_seeded_and_leaves_the_global_rng(pair) -> None:
    model, tokenizer = pair
    params = LMDecoding(decoding="sampled", temperature=1.5, max_new_tokens=16, seed=1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = generate(model, tokenizer, PROMPTS, params)
    assert torch.equal(torch.get_rng_state(), state)
    assert a == generate(model, tokenizer, PROMPTS, params)
    b = generate(model, tokenizer, PROMPTS, params.model_copy(update={"seed": 2}))
    assert a != b


def test_mode_restored_and_empty_refused(pair) -> None:
    model, tokenizer = pair
    model.train()
    generate(model, tokenizer, ["hi"], LMDecoding(max_new_tokens=2))
    assert model.training
    model.eval()
    with pytest.raises(LMDataError):
        generate(model, tokenizer, [], LMDecoding())
