"""The blast radius of a deletion request: datasets, samples and model versions it touches."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models import DatasetVersion, ModelVersion, Sample
from models.lineage import BLOCK_BITS, VersionMaskBlock

LIVE = ("active", "tainted")
# What a requester should know about a version with no recorded training samples.
LINEAGE_UNKNOWN = (
    "lineage unknown: we cannot tell whether it was trained on the data; it was not changed"
)


def mask_hits(blob: bytes, positions: np.ndarray) -> bool:
    """Any of ``positions`` set in a stored training mask, without unpacking every bit."""
    raw = zlib.decompress(blob)
    size = int.from_bytes(raw[-8:], "big")
    positions = positions[positions < size]
    if len(positions) == 0:
        return False
    packed = np.frombuffer(raw, dtype=np.uint8, count=(size + 7) // 8)
    bits = (packed[positions >> 3] >> (7 - (positions & 7))) & 1
    return bool(bits.any())


@dataclass
class BlastRadius:
    samples: dict[str, list[int]] = field(default_factory=dict)  # dataset_id → positions
    sample_ids: dict[str, list[str]] = field(default_factory=dict)
    direct: list[str] = field(default_factory=list)  # trained on the samples
    descendants: list[str] = field(default_factory=list)  # fine-tuned from one that was
    unverifiable: list[str] = field(default_factory=list)  # uploaded: lineage unknown

    def summary(self) -> dict[str, Any]:
        return {
            "datasets": {ds: len(p) for ds, p in self.samples.items()},
            "samples": sum(len(p) for p in self.samples.values()),
            "versions": self.direct,
            "descendants": self.descendants,
            "unverifiable_versions": self.unverifiable,
            **({"unverifiable_note": LINEAGE_UNKNOWN} if self.unverifiable else {}),
        }

    @property
    def empty(self) -> bool:
        return not self.direct and not self.descendants and not any(self.samples.values())


def _trained_on(
    session: Session, candidates: list[tuple[str, str]], positions: dict[str, np.ndarray]
) -> set[str]:
    """Which candidate versions have any of the positions set in their training mask.

    Reads only the index blocks (512 bytes each) holding those positions, never a whole
    mask: one subject costs about (its blocks × versions of its datasets) × 512 bytes.
    """
    hits: set[str] = set()
    wanted: dict[str, set[str]] = {}
    for vid, dataset_id in candidates:
        wanted.setdefault(dataset_id, set()).add(vid)
    postgres = session.get_bind().dialect.name == "postgresql"
    for dataset_id, ids in wanted.items():
        pos = positions[dataset_id]
        if postgres:
            hits.update(_trained_on_pg(session, dataset_id, pos) & ids)
            continue
        blocks = pos // BLOCK_BITS
        by_block = {int(b): pos[blocks == b] % BLOCK_BITS for b in np.unique(blocks)}
        ordered = sorted(ids)
        for chunk in range(0, len(ordered), 900):  # bound the bind parameters (SQLite)
            rows = session.execute(
                select(
                    VersionMaskBlock.version_id, VersionMaskBlock.block, VersionMaskBlock.bits
                ).where(
                    VersionMaskBlock.dataset_id == dataset_id,
                    VersionMaskBlock.block.in_(list(by_block)),
                    VersionMaskBlock.version_id.in_(ordered[chunk : chunk + 900]),
                )
            )
            hits.update(vid for vid, block, bits in rows if _any_set(bits, by_block[block]))
    return hits


# One row per (position) joined to its block of every version of the dataset; the bit is
# tested in the database, so only the ids of versions that have it come back.
_PG_HITS = text(
    """
    SELECT DISTINCT b.version_id
    FROM unnest(CAST(:blocks AS integer[]), CAST(:bytes AS integer[]), CAST(:masks AS integer[]))
         AS q(block, byte, mask)
    JOIN version_mask_blocks b ON b.dataset_id = :dataset_id AND b.block = q.block
    WHERE CASE WHEN q.byte < length(b.bits) THEN get_byte(b.bits, q.byte) & q.mask ELSE 0 END <> 0
    """
)


def _trained_on_pg(session: Session, dataset_id: str, pos: np.ndarray) -> set[str]:
    local = pos % BLOCK_BITS
    rows = session.execute(
        _PG_HITS,
        {
            "dataset_id": dataset_id,
            "blocks": (pos // BLOCK_BITS).tolist(),
            "bytes": (local >> 3).tolist(),
            "masks": (128 >> (local & 7)).tolist(),
        },
    )
    return {vid for (vid,) in rows}


def _any_set(bits: bytes, local: np.ndarray) -> bool:
    packed = np.frombuffer(bits, dtype=np.uint8)
    local = local[local < len(packed) * 8]
    return bool(((packed[local >> 3] >> (7 - (local & 7))) & 1).any())


def resolve(
    session: Session, kind: str, values: list[Any], model_id: str | None = None
) -> BlastRadius:
    radius = BlastRadius()
    column = {
        "subject_ids": Sample.subject_id,
        "sample_ids": Sample.sample_id,
        "labels": Sample.label,
    }[kind]
    rows = session.execute(
        select(Sample.dataset_id, Sample.position, Sample.sample_id).where(
            column.in_(values), Sample.removed_in_version.is_(None)
        )
    ).all()
    for dataset_id, position, sample_id in rows:
        radius.samples.setdefault(dataset_id, []).append(position)
        radius.sample_ids.setdefault(dataset_id, []).append(sample_id)
    # Lineage rows for every live version; masks are tested through their block index
    # (models.lineage), only for versions trained on a dataset the scope touches.
    versions = session.execute(
        select(
            ModelVersion.id,
            ModelVersion.model_id,
            ModelVersion.training_mask.is_not(None).label("has_mask"),
            ModelVersion.parent_version_id,
            ModelVersion.config[("unlearning", "exact")].as_boolean().label("exact_child"),
            DatasetVersion.dataset_id,
        )
        .outerjoin(DatasetVersion, DatasetVersion.id == ModelVersion.dataset_version_id)
        .where(ModelVersion.status.in_(LIVE))
    ).all()
    positions = {ds: np.asarray(sorted(p), dtype=np.int64) for ds, p in radius.samples.items()}
    children: dict[str, list[str]] = {}
    candidates: list[tuple[str, str]] = []
    for v in versions:
        if model_id is not None and v.model_id != model_id:
            continue
        # An exact unlearning result (retrain, SISA) owes its parent nothing but lineage.
        if v.parent_version_id and not v.exact_child:
            children.setdefault(v.parent_version_id, []).append(v.id)
        if not v.has_mask:
            radius.unverifiable.append(v.id)
        elif v.dataset_id in positions:
            candidates.append((v.id, v.dataset_id))
    hits = _trained_on(session, candidates, positions)
    radius.direct = [vid for vid, _ in candidates if vid in hits]
    # Versions initialised from an affected one inherit what it learned, whatever their own
    # training set; versions this workflow's unlearning produced are children too, but they
    # are never live while their parent is tainted, so they are not in ``versions``.
    seen = set(radius.direct)
    frontier = list(radius.direct)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in seen:
                seen.add(child)
                radius.descendants.append(child)
                frontier.append(child)
    radius.descendants = [d for d in radius.descendants if d not in radius.direct]
    return radius
