"""Which samples a model version was trained on, and which of them a forget scope hits.

A version's training set is a bit mask over its dataset's sample positions (fixed at
import), stored compressed on the version row: exact, a few kB, and fast to test
against a subject's samples without touching object storage.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models import Sample

# A forget scope as stored in a job spec: {"subject_ids": [...]} (one key of SCOPE_KEYS);
# the API validates it as ``api.jobs.schemas.ForgetScope``.
ScopeDict = dict[str, list[Any]]
SCOPE_KEYS = ("subject_ids", "sample_ids", "labels")


def encode_mask(positions: np.ndarray | list[int], size: int) -> bytes:
    mask = np.zeros(size, dtype=bool)
    mask[np.asarray(positions, dtype=np.int64)] = True
    return zlib.compress(np.packbits(mask).tobytes() + size.to_bytes(8, "big"), 6)


def decode_mask(blob: bytes) -> np.ndarray:
    raw = zlib.decompress(blob)
    size = int.from_bytes(raw[-8:], "big")
    return np.unpackbits(np.frombuffer(raw[:-8], dtype=np.uint8), count=size).astype(bool)


def in_version(version: int) -> Any:
    return and_(
        Sample.added_in_version <= version,
        or_(Sample.removed_in_version.is_(None), Sample.removed_in_version > version),
    )


def scope_kind(scope: ScopeDict) -> str:
    kinds = [k for k in SCOPE_KEYS if scope.get(k)]
    if len(kinds) != 1:
        raise ValueError("a forget scope names exactly one of subject_ids, sample_ids, labels")
    return kinds[0]


def scope_hash(scope: ScopeDict) -> str:
    """Stable identity of a scope (sorted values), to find a reusable reference."""
    kind = scope_kind(scope)
    canon = json.dumps({kind: sorted(scope[kind], key=str)}, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


@dataclass
class ForgetResolution:
    """The forget set of one version: sample rows it was trained on that the scope hits."""

    kind: str
    forget_positions: np.ndarray
    forget_sample_ids: list[str]
    trained_count: int
    labels: list[int] = field(default_factory=list)

    @property
    def retain_count(self) -> int:
        return self.trained_count - len(self.forget_positions)


def resolve_forget(
    session: Session, dataset_id: str, dataset_version: int, mask_blob: bytes, scope: ScopeDict
) -> ForgetResolution:
    kind = scope_kind(scope)
    values = scope[kind]
    column = {
        "subject_ids": Sample.subject_id,
        "sample_ids": Sample.sample_id,
        "labels": Sample.label,
    }[kind]
    rows = session.execute(
        select(Sample.position, Sample.sample_id)
        .where(
            Sample.dataset_id == dataset_id,
            Sample.split == "train",
            in_version(dataset_version),
            column.in_(values),
        )
        .order_by(Sample.position)
    ).all()
    mask = decode_mask(mask_blob)
    hit = [(p, sid) for p, sid in rows if p < len(mask) and mask[p]]
    return ForgetResolution(
        kind=kind,
        forget_positions=np.asarray([p for p, _ in hit], dtype=np.int64),
        forget_sample_ids=[sid for _, sid in hit],
        trained_count=int(mask.sum()),
        labels=[int(v) for v in values] if kind == "labels" else [],
    )
