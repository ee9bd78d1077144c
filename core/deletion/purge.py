"""Purging: old checkpoints (every object version) and the raw bytes of deleted samples.

Shards are immutable and shared by many samples, so deleting a sample's bytes means
writing its shard anew with that image blanked (a text record: replaced by null),
repointing every row, and deleting the old shard object with all its versions. Rows
stay (lineage needs positions) but lose what identifies a person: the subject id becomes
a salted commitment, the caption goes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from core.audit.log import record
from core.audit.trail import version_status
from core.datasets.shards import decode_shard, encode_shard
from core.datasets.text_shards import TEXT_SHARD_SUFFIX, blank_text_shard, is_text_shard
from core.deletion.shadows import forget_in_banks
from core.lineage import in_version
from core.storage import ObjectStore
from models import Dataset, DatasetVersion, ModelVersion, Sample
from models.base import new_id


def after_commit(session: Session, action: Callable[[], Any]) -> None:
    """Run ``action`` once this session's transaction has committed (never on rollback).

    Deleting objects before the commit could leave rows pointing at nothing if the
    transaction then failed; after it, the worst case is an orphan the sweep can find.
    """
    pending: list[Callable[[], Any]] = session.info.setdefault("after_commit", [])
    if not pending:

        def run(sess: Session) -> None:
            for fn in sess.info.pop("after_commit", []):
                fn()

        def drop(sess: Session) -> None:
            sess.info.pop("after_commit", None)

        event.listen(session, "after_commit", run, once=True)
        event.listen(session, "after_rollback", drop, once=True)
    pending.append(action)


def purge_version(session: Session, store: ObjectStore, version: ModelVersion) -> None:
    folder = version.checkpoint_key.rsplit("/", 1)[0]
    version_status(session, "system", [version.id], "purged")
    version.status = "purged"
    after_commit(session, lambda: store.delete_prefix(folder + "/"))


def delete_samples(
    session: Session,
    store: ObjectStore,
    kind: str,
    values: list[Any],
    request_id: str,
    commit: Callable[[str], str],
) -> dict[str, int]:
    """Remove the scope's samples from every dataset holding them; returns new versions."""
    column = {"subject_ids": Sample.subject_id, "sample_ids": Sample.sample_id}[kind]
    rows = session.scalars(
        select(Sample).where(column.in_(values), Sample.removed_in_version.is_(None))
    ).all()
    by_dataset: dict[str, list[Sample]] = {}
    for row in rows:
        by_dataset.setdefault(row.dataset_id, []).append(row)
    created: dict[str, int] = {}
    for dataset_id, doomed in by_dataset.items():
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        new_version = dataset.current_version + 1
        for shard_key in sorted({s.shard_key for s in doomed}):
            _rewrite_shard(
                session,
                store,
                shard_key,
                [s.shard_index for s in doomed if s.shard_key == shard_key],
            )
        for sample in doomed:
            sample.removed_in_version = new_version
            if sample.subject_id is not None:
                sample.subject_id = commit(sample.subject_id)
            sample.caption = None
        session.flush()
        remaining = session.execute(
            select(Sample.sample_id, Sample.shard_key, Sample.split)
            .where(Sample.dataset_id == dataset_id, in_version(new_version))
            .order_by(Sample.position)
        ).all()
        digest = hashlib.sha256()
        counts: dict[str, int] = {}
        for sample_id, shard_key, split in remaining:
            digest.update(f"{sample_id}\0{shard_key}\n".encode())
            counts[split] = counts.get(split, 0) + 1
        session.add(
            DatasetVersion(
                id=new_id("dsv"),
                dataset_id=dataset_id,
                version=new_version,
                content_hash=digest.hexdigest(),
                num_samples=len(remaining),
                split_counts=counts,
                reason=f"deletion request {request_id}: {len(doomed)} sample(s) removed",
                created_by="system",
            )
        )
        dataset.current_version = new_version
        created[dataset_id] = new_version
        record(
            session,
            "system",
            "dataset_version.created",
            "dataset",
            dataset_id,
            {
                "version": new_version,
                "content_hash": digest.hexdigest(),
                "samples": len(remaining),
                "removed": len(doomed),
                "deletion_request_id": request_id,
            },
        )
    # What the strong test's shadow banks derived from these samples goes with them.
    for old in forget_in_banks(session, store, {row.sample_id for row in rows}):
        after_commit(session, lambda old=old: store.delete(old))
    return created


def _rewrite_shard(session: Session, store: ObjectStore, key: str, indices: list[int]) -> None:
    if is_text_shard(key):
        # Text: the person's records become null slots, so the others keep their index.
        blob, suffix = blank_text_shard(store.get_bytes(key), indices), TEXT_SHARD_SUFFIX
    else:
        images = decode_shard(store.get_bytes(key)).copy()
        images[np.asarray(indices, dtype=np.int64)] = 0
        blob, suffix = encode_shard(images), ".npz"
    folder, name = key.rsplit("/", 1)
    stem = name.split("-", 1)[0]
    new_key = f"{folder}/{stem}-{hashlib.sha256(blob).hexdigest()[:16]}{suffix}"
    store.put_bytes(new_key, blob)
    session.execute(update(Sample).where(Sample.shard_key == key).values(shard_key=new_key))
    session.flush()
    still = session.scalar(select(func.count()).select_from(Sample).where(Sample.shard_key == key))
    if not still:
        after_commit(session, lambda: store.delete(key))
