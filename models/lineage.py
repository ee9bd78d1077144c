"""An index over training masks, by dataset and position block, for deletion scoping.

A version's training mask is stored compressed on its row (exact, small). Finding which of
1 000 versions trained on one subject's ten samples would mean fetching and unpacking all
1 000 masks (~1.5 s at 1 M samples); this table holds each mask cut in blocks of
``BLOCK_BITS`` positions, raw, keyed by (dataset, block), so scoping reads only the blocks
that hold the subject's positions. All-zero blocks are not stored: a missing row means
"trained on none of these positions". Rows are written by an ORM hook whenever a version
with a mask is inserted, so no writer has to remember them.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, event, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from models.base import Base
from models.datasets import DatasetVersion
from models.registry import ModelVersion

BLOCK_BITS = 4096  # 512 bytes a row: stored inline, never TOASTed
BLOCK_BYTES = BLOCK_BITS // 8


class VersionMaskBlock(Base):
    __tablename__ = "version_mask_blocks"
    __table_args__ = (Index("ix_version_mask_blocks_dataset_block", "dataset_id", "block"),)

    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(40))
    bits: Mapped[bytes] = mapped_column(LargeBinary)


def mask_blocks(blob: bytes) -> list[tuple[int, bytes]]:
    """(block number, packed bits) of every block with a set bit, from a stored mask."""
    raw = zlib.decompress(blob)
    size = int.from_bytes(raw[-8:], "big")
    packed = np.frombuffer(raw, dtype=np.uint8, count=(size + 7) // 8)
    out = []
    for block, start in enumerate(range(0, len(packed), BLOCK_BYTES)):
        chunk = packed[start : start + BLOCK_BYTES]
        if chunk.any():
            out.append((block, chunk.tobytes()))
    return out


def block_rows(version_id: str, dataset_id: str, blob: bytes) -> list[dict[str, Any]]:
    return [
        {"version_id": version_id, "block": block, "dataset_id": dataset_id, "bits": bits}
        for block, bits in mask_blocks(blob)
    ]


@event.listens_for(ModelVersion, "after_insert")
def _index_mask(_: Mapper[Any], connection: Connection, version: ModelVersion) -> None:
    if version.training_mask is None or version.dataset_version_id is None:
        return
    dataset_id = connection.scalar(
        select(DatasetVersion.dataset_id).where(DatasetVersion.id == version.dataset_version_id)
    )
    rows = block_rows(version.id, dataset_id, version.training_mask) if dataset_id else []
    if rows:
        connection.execute(VersionMaskBlock.__table__.insert(), rows)
