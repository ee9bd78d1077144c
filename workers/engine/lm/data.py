"""Text records and how they become token batches for a causal language model.

One template (``prompt_of``) is shared by training, generation and evaluation, so a model
is always asked a question in exactly the words it was fine-tuned on. A question/answer
record trains only on the answer (the prompt's labels are -100); a plain ``text`` record
trains on every token.

The prompt and the answer are tokenized separately and concatenated, so the prompt's
tokens are the same ids that ``generate`` feeds the model, whatever the tokenizer does at
word boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from workers.engine.errors import EngineError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE_INDEX",
    "Encoded",
    "LMDataError",
    "TextRecord",
    "answer_of",
    "batch_count",
    "encode",
    "encode_prompts",
    "iterate",
    "prompt_of",
]

# The label value torch's cross-entropy skips: prompt tokens and padding.
IGNORE_INDEX = -100


class LMDataError(EngineError):
    """A text record or a batch request cannot be turned into tokens (bad input)."""


@dataclass(frozen=True)
class TextRecord:
    """One sample of a text dataset: a question/answer pair or a plain text.

    ``subject_id`` names the person the record is about (a deletion by subject removes
    every record carrying it); ``None`` for records about nobody in particular.
    """

    sample_id: str
    subject_id: str | None = None
    question: str | None = None
    answer: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if not self.sample_id:
            raise LMDataError("a text record needs a non-empty sample_id")
        is_qa = self.question is not None or self.answer is not None
        if is_qa and self.text is not None:
            raise LMDataError(
                f"record {self.sample_id!r}: give either question+answer or text, not both"
            )
        if is_qa and (not self.question or not self.answer):
            raise LMDataError(
                f"record {self.sample_id!r}: a question/answer record needs both, non-empty"
            )
        if not is_qa and not self.text:
            raise LMDataError(f"record {self.sample_id!r}: needs question+answer or text")

    @property
    def is_qa(self) -> bool:
        """True for a question/answer record (only the answer is trained on)."""
        return self.question is not None


def prompt_of(record: TextRecord | str) -> str:
    """The prompt a model sees before its answer; ``""`` for a plain text record.

    A bare string is taken as a question, so generation can ask new questions in the
    same template the model was fine-tuned on.
    """
    if isinstance(record, str):
        return f"Question: {record}\nAnswer:"
    if not record.is_qa:
        return ""
    return f"Question: {record.question}\nAnswer:"


def answer_of(record: TextRecord, answer: str | None = None) -> str:
    """The target text that follows ``prompt_of(record)`` (the whole text for plain text).

    ``answer`` replaces the record's own answer (a paraphrased, perturbed or "I don't
    know" answer for evaluation and unlearning), keeping the template's leading space.
    """
    if not record.is_qa:
        if answer is not None:
            raise LMDataError(f"record {record.sample_id!r} is plain text: it has no answer")
        return record.text or ""
    text = record.answer if answer is None else answer
    if text is None:  # a QA record always has its answer (checked when it is made)
        raise LMDataError(f"record {record.sample_id!r} has no answer")
    return " " + text.strip()


@dataclass
class Encoded:
    """Right-padded token tensors (N x L, int64) and the sample id of every row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    sample_ids: list[str]

    def __len__(self) -> int:
        return len(self.sample_ids)

    def subset(self, rows: Sequence[int]) -> Encoded:
        """The given rows, in that order (e.g. the forget part of an encoded set)."""
        index = torch.as_tensor(list(rows), dtype=torch.long)
        return Encoded(
            input_ids=self.input_ids[index],
            attention_mask=self.attention_mask[index],
            labels=self.labels[index],
            sample_ids=[self.sample_ids[i] for i in index.tolist()],
        )


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    if pad is None:
        raise LMDataError("the tokenizer has neither a pad nor an eos token")
    return int(pad)


def _ids(tokenizer: PreTrainedTokenizerBase, text: str, special: bool) -> list[int]:
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def encode(
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    max_length: int,
    answers: Sequence[str] | None = None,
) -> Encoded:
    """Tokenize ``records`` into padded tensors with the prompt masked out of the labels.

    Each row is ``prompt (with the tokenizer's special prefix) + answer + eos``, cut to
    ``max_length`` from the right. ``answers`` (one per record) replaces the records'
    answers, e.g. to score perturbed answers or train on "I don't know". A record whose
    answer is cut away entirely is refused: it would train on nothing.
    """
    if max_length < 2:
        raise LMDataError(f"max_length must be at least 2, got {max_length}")
    if not records:
        raise LMDataError("no text records to encode")
    if answers is not None and len(answers) != len(records):
        raise LMDataError(f"{len(answers)} answers for {len(records)} records")
    eos = tokenizer.eos_token_id
    rows: list[tuple[list[int], list[int]]] = []
    for i, record in enumerate(records):
        prompt = _ids(tokenizer, prompt_of(record), special=True)
        target_text = answer_of(record, None if answers is None else answers[i])
        # A plain text has no prompt: its special prefix (bos, if any) goes on the text.
        target = _ids(tokenizer, target_text, special=not prompt)
        if eos is not None:
            target = [*target, int(eos)]
        ids = (prompt + target)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt) + target)[:max_length]
        if record.is_qa and all(label == IGNORE_INDEX for label in labels):
            raise LMDataError(
                f"record {record.sample_id!r}: its prompt alone is {len(prompt)} tokens, "
                f"max_length {max_length} leaves no answer token to train on"
            )
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    pad = _pad_id(tokenizer)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for row, (ids, labels) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
        labels_t[row, : len(labels)] = torch.tensor(labels, dtype=torch.long)
    return Encoded(
        input_ids=input_ids,
        attention_mask=attention,
        labels=labels_t,
        sample_ids=[r.sample_id for r in records],
    )


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Left-padded prompt batch for generation (the last column is every prompt's end).

    ``prompts`` are final strings (already passed through ``prompt_of`` if wanted);
    ``max_length`` keeps each prompt's last tokens.
    """
    if not prompts:
        raise LMDataError("no prompts")
    rows = [_ids(tokenizer, p, special=True) for p in prompts]
    if max_length is not None:
        rows = [ids[-max_length:] for ids in rows]
    for prompt, ids in zip(prompts, rows, strict=True):
        if not ids:
            raise LMDataError(f"prompt {prompt!r} has no tokens")
    width = max(len(ids) for ids in rows)
    pad = _pad_id(tokenizer)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention[row, width - len(ids) :] = 1
    return {"input_ids": input_ids, "attention_mask": attention}


def iterate(
    encoded: Encoded,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    skip_batches: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """Batches ``{input_ids, attention_mask, labels}``, each cut to its longest row.

    The order is a pure function of ``seed`` (use ``seed + epoch`` for a new order each
    epoch), so a resumed run that skips the ``skip_batches`` it already did sees exactly
    the batches the interrupted run would have.
    """
    if batch_size < 1:
        raise LMDataError(f"batch_size must be at least 1, got {batch_size}")
    n = len(encoded)
    if shuffle:
        generator = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(n, generator=generator)
    else:
        order = torch.arange(n)
    for start in range(skip_batches * batch_size, n, batch_size):
        index = order[start : start + batch_size]
        mask = encoded.attention_mask[index]
        width = int(mask.sum(dim=1).max().item())
        yield {
            "input_ids": encoded.input_ids[index, :width],
            "attention_mask": mask[:, :width],
            "labels": encoded.labels[index, :width],
        }


def batch_count(n: int, batch_size: int) -> int:
    """How many batches ``iterate`` yields for ``n`` rows (the last one may be short)."""
    return (n + batch_size - 1) // batch_size
