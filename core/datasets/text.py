"""Text datasets: records of plain text or question/answer pairs, checked before storing.

A text dataset is what a language model is fine-tuned on, so every record may be about a
person (``subject_id``): a deletion request by subject removes that person's records and
closing it rewrites the text shards without them, exactly as for images. A record holds
either ``text`` (trained on every token) or ``question`` + ``answer`` (trained on the
answer), optionally with the evaluation fields TOFU-style metrics need: a
``paraphrased_answer`` and ``perturbed_answers`` (wrong answers in the same wording).

Like ``DatasetImport`` for images, a ``TextDatasetImport`` is validated once, before a
byte reaches object storage or a row reaches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from core.datasets.errors import DatasetImportError
from core.datasets.records import SPLITS, Split, check_id

__all__ = [
    "CONTENT_FIELDS",
    "MAX_PERTURBED",
    "MAX_TEXT_CHARS",
    "MODALITIES",
    "Modality",
    "TextDatasetImport",
    "TextSampleRecord",
]

Modality = Literal["images", "text"]
MODALITIES: tuple[str, ...] = get_args(Modality)

# One field of one record; longer rows are refused rather than truncated, since a cut
# answer would train the model on something the uploader never wrote.
MAX_TEXT_CHARS = 20_000
MAX_PERTURBED = 20
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# What a text shard stores for a record; identities (sample, subject, split) live in the
# database rows, like an image's id lives beside its pixels.
CONTENT_FIELDS: tuple[str, ...] = (
    "text",
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answers",
    "kind",
)


def check_text(value: Any, what: str) -> None:
    """A non-empty string without NUL or other control characters (tabs and newlines are
    text), at most ``MAX_TEXT_CHARS`` long."""
    if not isinstance(value, str):
        raise DatasetImportError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DatasetImportError(f"{what} is empty")
    if len(value) > MAX_TEXT_CHARS:
        raise DatasetImportError(
            f"{what} is {len(value)} characters long; the limit is {MAX_TEXT_CHARS}"
        )
    if "\x00" in value:
        raise DatasetImportError(f"{what} contains a NUL character")
    bad = next((ch for ch in value if ord(ch) < 32 and ch not in "\t\n\r" or ord(ch) == 127), None)
    if bad is not None:
        raise DatasetImportError(f"{what} contains the control character {bad!r}")


@dataclass
class TextSampleRecord:
    """One text sample: its identity and either ``text`` or ``question`` + ``answer``."""

    sample_id: str
    subject_id: str | None = None
    split: Split = "train"
    text: str | None = None
    question: str | None = None
    answer: str | None = None
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] | None = None
    kind: str | None = None

    def validate(self) -> None:
        check_id(self.sample_id, "sample_id", required=True)
        check_id(self.subject_id, "subject_id", required=False)
        if self.split not in SPLITS:
            raise DatasetImportError(f"split {self.split!r} is not one of {', '.join(SPLITS)}")
        is_qa = self.question is not None or self.answer is not None
        if is_qa and self.text is not None:
            raise DatasetImportError("give either 'text' or 'question' + 'answer', not both")
        if not is_qa and self.text is None:
            raise DatasetImportError("needs 'text', or 'question' and 'answer'")
        if is_qa:
            for name in ("question", "answer"):
                if getattr(self, name) is None:
                    raise DatasetImportError(f"'{name}' is missing (a QA record needs both)")
                check_text(getattr(self, name), f"'{name}'")
        else:
            check_text(self.text, "'text'")
            for name in ("paraphrased_answer", "perturbed_answers"):
                if getattr(self, name) is not None:
                    raise DatasetImportError(f"'{name}' only goes with 'question' + 'answer'")
        if self.paraphrased_answer is not None:
            check_text(self.paraphrased_answer, "'paraphrased_answer'")
        if self.perturbed_answers is not None:
            if not isinstance(self.perturbed_answers, tuple) or not self.perturbed_answers:
                raise DatasetImportError("'perturbed_answers' must be a non-empty list of strings")
            if len(self.perturbed_answers) > MAX_PERTURBED:
                raise DatasetImportError(
                    f"'perturbed_answers' has {len(self.perturbed_answers)} entries; "
                    f"the limit is {MAX_PERTURBED}"
                )
            for number, wrong in enumerate(self.perturbed_answers, start=1):
                check_text(wrong, f"'perturbed_answers' entry {number}")
        if self.kind is not None and (not isinstance(self.kind, str) or not _KIND.match(self.kind)):
            raise DatasetImportError(
                f"'kind' {self.kind!r} must be a short lower-case word (letters, digits, _)"
            )

    def content(self) -> dict[str, Any]:
        """The fields a text shard stores for this record (no identities)."""
        out: dict[str, Any] = {}
        for name in CONTENT_FIELDS:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every field, lists for tuples: the shape the reader hands to the workers."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if out["perturbed_answers"] is not None:
            out["perturbed_answers"] = list(out["perturbed_answers"])
        return out


@dataclass
class TextDatasetImport:
    """A whole text dataset ready to store; ``source`` as for ``DatasetImport``."""

    name: str
    records: list[TextSampleRecord]
    source: str
    description: str = ""
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    modality: Modality = field(default="text", init=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise DatasetImportError("a dataset needs a non-empty name")
        if not self.records:
            raise DatasetImportError(f"dataset {self.name!r} has no records")
        index: dict[str, int] = {}
        for position, record in enumerate(self.records):
            try:
                record.validate()
            except DatasetImportError as exc:
                raise DatasetImportError(f"record {record.sample_id!r}: {exc}") from None
            if record.sample_id in index:
                raise DatasetImportError(f"sample id {record.sample_id!r} appears twice")
            index[record.sample_id] = position
        self._index = index

    @property
    def num_samples(self) -> int:
        return len(self.records)

    def position(self, sample_id: str) -> int:
        return self._index[sample_id]

    def __iter__(self) -> Iterator[TextSampleRecord]:
        return iter(self.records)

    def subjects(self) -> dict[str, list[str]]:
        """subject_id → its sample ids: what a deletion request for a person touches."""
        result: dict[str, list[str]] = {}
        for record in self.records:
            if record.subject_id is not None:
                result.setdefault(record.subject_id, []).append(record.sample_id)
        return result
