"""The in-memory result of importing a dataset, checked once before anything is stored.

Every source (built-in, archive, manifest) produces a ``DatasetImport``; the service then
shards the images and registers the samples. Validating here means a bad upload fails
before a single byte reaches object storage or a row reaches the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from core.datasets.errors import DatasetImportError

__all__ = ["MAX_ID_LENGTH", "DatasetImport", "SampleRecord", "Split", "check_id"]

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
# Ids end up in URLs, audit events (hashed) and object keys; keep them bounded.
MAX_ID_LENGTH = 512


def check_id(value: str | None, what: str, *, required: bool) -> None:
    if value is None:
        if required:
            raise DatasetImportError(f"{what} is missing")
        return
    if not isinstance(value, str) or not value.strip():
        raise DatasetImportError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise DatasetImportError(f"{what} {value[:40]!r}... is longer than {MAX_ID_LENGTH}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise DatasetImportError(f"{what} {value!r} contains a control character")


@dataclass
class SampleRecord:
    """One sample's identity and annotations; its pixels are the matching row of images."""

    sample_id: str
    label: int | None
    subject_id: str | None
    caption: str | None
    split: Split

    def validate(self, num_labels: int) -> None:
        check_id(self.sample_id, "sample_id", required=True)
        check_id(self.subject_id, f"subject_id of {self.sample_id!r}", required=False)
        if self.split not in SPLITS:
            raise DatasetImportError(
                f"sample {self.sample_id!r} has split {self.split!r}; expected one of {SPLITS}"
            )
        if self.label is not None:
            if isinstance(self.label, bool) or not isinstance(self.label, (int, np.integer)):
                raise DatasetImportError(
                    f"sample {self.sample_id!r} has a non-integer label {self.label!r}"
                )
            if not 0 <= int(self.label) < num_labels:
                raise DatasetImportError(
                    f"sample {self.sample_id!r} has label {self.label}, "
                    f"outside 0..{num_labels - 1} ({num_labels} label names)"
                )
        if self.caption is not None and not isinstance(self.caption, str):
            raise DatasetImportError(f"sample {self.sample_id!r} has a non-string caption")


@dataclass
class DatasetImport:
    """A whole dataset ready to store: uint8 images N×H×W×C plus one record per image.

    ``label_names[i]`` names label ``i``. ``source`` says where it came from (e.g.
    ``builtin:mnist``, ``archive:faces.zip``) and ends up in the dataset's provenance.
    """

    name: str
    images: np.ndarray
    records: list[SampleRecord]
    label_names: list[str]
    source: str
    description: str = ""
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise DatasetImportError unless images, records and labels agree."""
        if not isinstance(self.name, str) or not self.name.strip():
            raise DatasetImportError("a dataset needs a non-empty name")
        images = self.images
        if not isinstance(images, np.ndarray):
            raise DatasetImportError("images must be a numpy array")
        if images.dtype != np.uint8:
            raise DatasetImportError(f"images must be uint8, got {images.dtype}")
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise DatasetImportError(
                f"images must be N×H×W×C with C = 1 or 3, got shape {images.shape}"
            )
        if images.shape[0] == 0:
            raise DatasetImportError(f"dataset {self.name!r} has no samples")
        if len(self.records) != images.shape[0]:
            raise DatasetImportError(
                f"{len(self.records)} records for {images.shape[0]} images; they must match"
            )
        if len(set(self.label_names)) != len(self.label_names):
            raise DatasetImportError("label names must be unique")
        index: dict[str, int] = {}
        for position, record in enumerate(self.records):
            record.validate(len(self.label_names))
            if record.sample_id in index:
                raise DatasetImportError(f"sample id {record.sample_id!r} appears twice")
            index[record.sample_id] = position
        self._index = index

    @property
    def num_samples(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of every image."""
        _, height, width, channels = self.images.shape
        return int(height), int(width), int(channels)

    def position(self, sample_id: str) -> int:
        """Row of ``sample_id`` in ``images``; KeyError if absent."""
        return self._index[sample_id]

    def split_indices(self, split: Split) -> np.ndarray:
        """Rows that belong to ``split``, in order."""
        return np.array(
            [i for i, record in enumerate(self.records) if record.split == split], dtype=np.int64
        )

    def subjects(self) -> dict[str, list[str]]:
        """subject_id → its sample ids: what a deletion request for a person touches."""
        result: dict[str, list[str]] = {}
        for record in self.records:
            if record.subject_id is not None:
                result.setdefault(record.subject_id, []).append(record.sample_id)
        return result
