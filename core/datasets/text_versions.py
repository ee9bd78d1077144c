"""A text dataset version's records, read back for the workers (the one DB query here).

The image jobs read pixels through ``workers.jobs.common.load_samples``; a language-model
job reads its text through ``load_text_records``: the rows of the version (identity,
split, position) joined with the contents of their text shards. It returns plain dicts,
so the LM engine (which may not import ``core``) gets them converted to its
``TextRecord`` by the job handler.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.datasets.reader import ShardReader
from core.lineage import in_version
from models import Dataset, Sample

__all__ = ["TextDatasetError", "load_text_records"]


class TextDatasetError(ValueError):
    """The dataset is not a text dataset, or the version holds no such records."""


def load_text_records(
    session: Session,
    reader: ShardReader,
    dataset_id: str,
    version: int,
    *,
    split: str | None = None,
    positions: Iterable[int] | None = None,
) -> list[dict[str, Any]]:
    """Records of a text dataset version, ordered by sample id.

    Each dict: ``sample_id``, ``subject_id``, ``split``, ``position`` (the lineage
    mask's index), ``text``, ``question``, ``answer``, ``paraphrased_answer``,
    ``perturbed_answers`` (list or None) and ``kind``. ``split`` keeps one split;
    ``positions`` keeps only those positions (e.g. a model version's training mask).
    """
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise TextDatasetError(f"dataset {dataset_id} does not exist")
    if dataset.modality != "text":
        raise TextDatasetError(f"dataset {dataset_id} holds {dataset.modality}, not text")
    stmt = (
        select(
            Sample.sample_id,
            Sample.subject_id,
            Sample.split,
            Sample.position,
            Sample.shard_key,
            Sample.shard_index,
        )
        .where(Sample.dataset_id == dataset_id, in_version(version))
        .order_by(Sample.sample_id)
    )
    if split is not None:
        stmt = stmt.where(Sample.split == split)
    rows = session.execute(stmt).all()
    if positions is not None:
        wanted = {int(p) for p in positions}
        rows = [row for row in rows if row.position in wanted]
    if not rows:
        which = f"{split!r} " if split else ""
        raise TextDatasetError(f"dataset {dataset_id} version {version} has no {which}records")
    contents = reader.gather_text([(row.shard_key, row.shard_index) for row in rows])
    return [
        {
            "sample_id": row.sample_id,
            "subject_id": row.subject_id,
            "split": row.split,
            "position": row.position,
            **content,
        }
        for row, content in zip(rows, contents, strict=True)
    ]
