"""The blast radius of a deletion request: datasets, samples and model versions it touches."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import DatasetVersion, ModelVersion, Sample

LIVE = ("active", "tainted")


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
        }

    @property
    def empty(self) -> bool:
        return not self.direct and not self.descendants and not any(self.samples.values())


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
    versions = session.execute(
        select(
            ModelVersion.id,
            ModelVersion.model_id,
            ModelVersion.training_mask,
            ModelVersion.parent_version_id,
            ModelVersion.config,
            DatasetVersion.dataset_id,
        )
        .outerjoin(DatasetVersion, DatasetVersion.id == ModelVersion.dataset_version_id)
        .where(ModelVersion.status.in_(LIVE))
    ).all()
    positions = {ds: np.asarray(sorted(p), dtype=np.int64) for ds, p in radius.samples.items()}
    children: dict[str, list[str]] = {}
    for v in versions:
        if model_id is not None and v.model_id != model_id:
            continue
        # An exact unlearning result (retrain, SISA) owes its parent nothing but lineage.
        exact_child = bool((v.config or {}).get("unlearning", {}).get("exact"))
        if v.parent_version_id and not exact_child:
            children.setdefault(v.parent_version_id, []).append(v.id)
        if v.training_mask is None:
            radius.unverifiable.append(v.id)
        elif v.dataset_id in positions and mask_hits(v.training_mask, positions[v.dataset_id]):
            radius.direct.append(v.id)
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
