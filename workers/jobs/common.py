"""What every job handler needs: samples as arrays, engine callbacks, checkpoint I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from core.datasets.reader import ShardReader
from models import Sample
from workers.context import JobContext
from workers.engine.data import ImageArrays
from workers.engine.training import Callbacks


@dataclass
class SampleSet:
    arrays: ImageArrays
    subject_ids: list[str | None]


def in_version(version: int) -> Any:
    return and_(
        Sample.added_in_version <= version,
        or_(Sample.removed_in_version.is_(None), Sample.removed_in_version > version),
    )


def load_split(
    session: Session, reader: ShardReader, dataset_id: str, version: int, split: str
) -> SampleSet:
    """All samples of one split of a dataset version, ordered by sample id."""
    rows = session.execute(
        select(
            Sample.sample_id, Sample.label, Sample.subject_id, Sample.shard_key, Sample.shard_index
        )
        .where(Sample.dataset_id == dataset_id, Sample.split == split, in_version(version))
        .order_by(Sample.sample_id)
    ).all()
    if not rows:
        raise ValueError(f"dataset {dataset_id} version {version} has no {split!r} samples")
    if any(r.label is None for r in rows):
        raise ValueError(f"some {split!r} samples have no label; a classifier needs labels")
    images = reader.gather([(r.shard_key, r.shard_index) for r in rows])
    arrays = ImageArrays(
        images=images,
        labels=np.asarray([r.label for r in rows], dtype=np.int64),
        sample_ids=[r.sample_id for r in rows],
    )
    return SampleSet(arrays=arrays, subject_ids=[r.subject_id for r in rows])


class ContextCallbacks(Callbacks):
    """Bridges engine callbacks to the job's events, heartbeats and cancellation."""

    def __init__(self, ctx: JobContext, progress_span: tuple[float, float] = (0.0, 1.0)) -> None:
        self.ctx = ctx
        self.low, self.high = progress_span
        self.resume_key = f"jobs/{ctx.job_id}/resume.pt"

    def on_progress(self, step: int, total_steps: int) -> None:
        self.ctx.check()
        fraction = step / total_steps if total_steps else 1.0
        self.ctx.progress(self.low + (self.high - self.low) * fraction)

    def on_log(self, message: str) -> None:
        self.ctx.log(message)

    def on_metric(self, name: str, value: float, step: int) -> None:
        self.ctx.metric(name, value, step)

    def should_stop(self) -> bool:
        return self.ctx.should_stop()

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        """Persist resumable state so a requeued attempt continues instead of restarting."""
        import io

        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.ctx.store.put_bytes(self.resume_key, buffer.getvalue())

    def load_resume(self) -> dict[str, Any] | None:
        import io

        import torch

        if not self.ctx.store.exists(self.resume_key):
            return None
        data = self.ctx.store.get_bytes(self.resume_key)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
