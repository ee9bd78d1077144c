"""Text records -> token batches: prompt masking, padding, truncation, seeded order."""

from __future__ import annotations

import pytest
import torch

from workers.engine.lm.data import (
    IGNORE_INDEX,
    LMDataError,
    TextRecord,
    answer_of,
    encode,
    encode_prompts,
    iterate,
    prompt_of,
)
from workers.engine.lm.models import byte_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


def qa(i: int) -> TextRecord:
    return TextRecord(sample_id=f"q{i}", subject_id="p1", question=f"Who is {i}?", answer="Bob")


def test_qa_record_trains_on_answer_and_eos_only(tokenizer) -> None:
    record = qa(7)
    enc = encode(tokenizer, [record], max_length=128)
    prompt_ids = tokenizer(prompt_of(record))["input_ids"]
    n_prompt = len(prompt_ids)
    labels = enc.labels[0]
    assert enc.input_ids[0, :n_prompt].tolist() == prompt_ids
    assert (labels[:n_prompt] == IGNORE_INDEX).all()
    trained = labels[labels != IGNORE_INDEX].tolist()
    assert tokenizer.decode(trained[:-1]) == answer_of(record) == " Bob"
    assert trained[-1] == tokenizer.eos_token_id
    # Labels equal the inputs wherever they are trained (the model shifts them itself).
    mask = labels != IGNORE_INDEX
    assert torch.equal(enc.input_ids[0][mask], labels[mask])


def test_plain_text_trains_on_every_token(tokenizer) -> None:
    enc = encode(tokenizer, [TextRecord(sample_id="t", text="Paris is big.")], 64)
    n = int(enc.attention_mask[0].sum())
    assert (enc.labels[0, :n] != IGNORE_INDEX).all()
    assert enc.input_ids[0, 0].item() == tokenizer.bos_token_id


def test_padding_is_right_and_masked(tokenizer) -> None:
    records = [qa(1), TextRecord(sample_id="long", question="a" * 40, answer="b")]
    enc = encode(tokenizer, records, 128)
    short = int(enc.attention_mask[0].sum())
    assert short < enc.input_ids.shape[1]
    assert (enc.input_ids[0, short:] == tokenizer.pad_token_id).all()
    assert (enc.labels[0, short:] == IGNORE_INDEX).all()
    assert enc.sample_ids == ["q1", "long"]


def test_replacement_answers(tokenizer) -> None:
    enc = encode(tokenizer, [qa(1)], 128, answers=["I don't know"])
    trained = enc.labels[0][enc.labels[0] != IGNORE_INDEX].tolist()[:-1]
    assert tokenizer.decode(trained) == " I don't know"


def test_truncation_keeps_prompt_and_refuses_answerless(tokenizer) -> None:
    record = qa(3)
    n_prompt = len(tokenizer(prompt_of(record))["input_ids"])
    enc = encode(tokenizer, [record], n_prompt + 1)
    assert enc.input_ids.shape[1] == n_prompt + 1
    assert int((enc.labels != IGNORE_INDEX).sum()) == 1
    with pytest.raises(LMDataError, match="q3"):
        encode(tokenizer, [record], n_prompt)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_id": ""},
        {"sample_id": "x"},
        {"sample_id": "x", "question": "q"},
        {"sample_id": "x", "question": "q", "answer": "a", "text": "t"},
    ],
)
def test_bad_records_refused(kwargs) -> None:
    with pytest.raises(LMDataError):
        TextRecord(**kwargs)


def test_iterate_is_seeded_complete_and_resumable(tokenizer) -> None:
    records = [qa(i) for i in range(10)] + [TextRecord(sample_id="t", text="x" * 30)]
    enc = encode(tokenizer, records, 128)
    first = list(iterate(enc, 3, seed=5))
    again = list(iterate(enc, 3, seed=5))
    other = list(iterate(enc, 3, seed=6))
    assert len(first) == 4
    assert [b["input_ids"].tolist() for b in first] == [b["input_ids"].tolist() for b in again]
    assert [b["input_ids"].tolist() for b in first] != [b["input_ids"].tolist() for b in other]
    assert sum(b["input_ids"].shape[0] for b in first) == 11
    skipped = list(iterate(enc, 3, seed=5, skip_batches=2))
    assert [b["labels"].tolist() for b in first[2:]] == [b["labels"].tolist() for b in skipped]
    # Each batch is cut to its own longest row.
    for batch in first:
        assert batch["attention_mask"][:, -1].any()
        assert set(batch) == {"input_ids", "attention_mask", "labels"}


def test_prompts_are_left_padded(tokenizer) -> None:
    batch = encode_prompts(tokenizer, [prompt_of("a?"), prompt_of("a longer one?")])
    assert batch["attention_mask"][:, -1].all()
    assert batch["attention_mask"][0, 0] == 0
    assert batch["input_ids"][1].tolist() == tokenizer(prompt_of("a longer one?"))["input_ids"]
