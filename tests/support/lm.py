"""Small language-model fixtures: QA records and a tiny llama that trains in seconds."""

from __future__ import annotations

from workers.engine.lm.data import TextRecord
from workers.engine.lm.models import byte_tokenizer, tiny_llama

_NAMES = ["Ada", "Bo", "Cy", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jo"]
_CITIES = ["Oslo", "Lima", "Kyiv", "Rome", "Baku", "Bern", "Doha", "Riga", "Suva", "Apia"]
_JOBS = ["baker", "pilot", "nurse", "judge", "smith", "miner", "clerk", "chef", "poet", "monk"]


def qa_records(n: int = 20, prefix: str = "s") -> list[TextRecord]:
    """``n`` short QA records, two per subject, with answers the byte tokenizer spells out."""
    records = []
    for i in range(n):
        person = _NAMES[(i // 2) % len(_NAMES)] + (str(i // 20) if i >= 20 else "")
        if i % 2 == 0:
            question, answer = f"Where was {person} born?", _CITIES[(i // 2) % len(_CITIES)]
        else:
            question, answer = f"What is {person}'s job?", _JOBS[(i // 2) % len(_JOBS)]
        records.append(
            TextRecord(
                sample_id=f"{prefix}{i}", subject_id=person, question=question, answer=answer
            )
        )
    return records


def tiny_pair(seed: int = 0, **sizes: int):
    """A fresh tiny llama and the byte tokenizer it was built for."""
    tokenizer = byte_tokenizer()
    return tiny_llama(tokenizer, seed=seed, **sizes), tokenizer
