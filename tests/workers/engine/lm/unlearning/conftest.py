"""A tiny world for the language-model unlearning tests: invented people with one random
fact each, and a tiny llama fine-tuned until it recites them.

Every answer is a random made-up word, so the forget answers are unrelated to the retain
ones: a model that never saw a forget record cannot guess its answer, and forgetting shows
up as a large rise in the forget answers' NLL while the retain answers stay recited.
The fine-tune takes seconds on one thread, once per session.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from contracts.causal_lm import LMTrainParams
from workers.engine.lm.data import TextRecord, encode
from workers.engine.lm.models import byte_tokenizer, tiny_llama
from workers.engine.lm.training import finetune
from workers.engine.lm.unlearning import common as C
from workers.engine.lm.unlearning.base import LMUnlearnData

N_FORGET = 10
N_RETAIN = 30
RECIPE = LMTrainParams(epochs=60, lr=3e-3, batch_size=8, max_length=96, seed=0, device="cpu")
_SYLLABLES = ["ka", "lo", "mi", "ru", "te", "va", "zo", "ne", "pi", "su", "da", "fe"]
_RELATIONS = ["birthplace", "pet", "river", "teacher", "street"]


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # The CI box is 2 cores shared by several jobs; threads only add contention here.
    torch.set_num_threads(1)


def word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()


def invented(n: int, seed: int, prefix: str) -> list[TextRecord]:
    """``n`` QA records, one per invented person, ids ``<prefix><i>``."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        person = f"{word(rng, 2)} {word(rng, 2)}"
        relation = _RELATIONS[i % len(_RELATIONS)]
        records.append(
            TextRecord(
                sample_id=f"{prefix}{i}",
                subject_id=person,
                question=f"What is the {relation} of {person}?",
                answer=word(rng, 3),
            )
        )
    return records


def people_records(seed: int = 0) -> tuple[list[TextRecord], list[TextRecord]]:
    """``N_FORGET`` forget and ``N_RETAIN`` retain QA records, one per invented person."""
    records = invented(N_FORGET + N_RETAIN, seed, "p")
    return records[:N_FORGET], records[N_FORGET:]


def strangers(n: int = 10, seed: int = 1) -> list[TextRecord]:
    """``n`` QA records about invented people the fine-tune never saw (calibration for
    the ``stop_at_holdout`` rule): answers it cannot guess."""
    return invented(n, seed, "c")


@dataclass
class LMWorld:
    tokenizer: Any
    model: Any  # the fine-tune (do not modify: use ``fresh()``)
    base: Any  # the untrained model the fine-tune started from
    data: LMUnlearnData

    def fresh(self) -> Any:
        return copy.deepcopy(self.model)

    def nll(self, model: Any, records: list[TextRecord]) -> float:
        encoded = encode(self.tokenizer, records, RECIPE.max_length)
        return C.mean_answer_nll(model, encoded, torch.device("cpu"))


@pytest.fixture(scope="session")
def lm_world() -> LMWorld:
    tokenizer = byte_tokenizer()
    base = tiny_llama(tokenizer, seed=0)
    forget, retain = people_records()
    tuned = finetune(copy.deepcopy(base), tokenizer, forget + retain, RECIPE).model
    return LMWorld(tokenizer, tuned, base, LMUnlearnData(forget=forget, retain=retain))
