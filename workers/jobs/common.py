"""What every job handler needs: samples as arrays, engine callbacks, checkpoint I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.datasets.reader import ShardReader
from core.lineage import decode_mask, in_version, scope_kind
from models import Job, ModelVersion, Sample
from workers.context import JobCancelled, JobContext
from workers.engine.data import ImageArrays
from workers.engine.errors import EngineError
from workers.engine.training import Callbacks


@dataclass
class SampleSet:
    arrays: ImageArrays
    subject_ids: list[str | None]
    positions: np.ndarray

    def positions_of(self, sample_ids: list[str]) -> np.ndarray:
        index = {sid: i for i, sid in enumerate(self.arrays.sample_ids)}
        return self.positions[[index[sid] for sid in sample_ids]]


def load_samples(
    session: Session,
    reader: ShardReader,
    dataset_id: str,
    version: int,
    *,
    split: str,
    positions: np.ndarray | None = None,
) -> SampleSet:
    """Samples of one split of a dataset version (optionally only these positions),
    ordered by sample id so every consumer sees the same order."""
    stmt = (
        select(
            Sample.sample_id,
            Sample.label,
            Sample.subject_id,
            Sample.shard_key,
            Sample.shard_index,
            Sample.position,
        )
        .where(Sample.dataset_id == dataset_id, Sample.split == split, in_version(version))
        .order_by(Sample.sample_id)
    )
    rows = session.execute(stmt).all()
    if positions is not None:
        wanted = set(np.asarray(positions).tolist())
        rows = [r for r in rows if r.position in wanted]
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
    return SampleSet(
        arrays=arrays,
        subject_ids=[r.subject_id for r in rows],
        positions=np.asarray([r.position for r in rows], dtype=np.int64),
    )


def load_split(
    session: Session, reader: ShardReader, dataset_id: str, version: int, split: str
) -> SampleSet:
    return load_samples(session, reader, dataset_id, version, split=split)


def dataset_size(session: Session, dataset_id: str) -> int:
    """Number of sample positions ever allocated in the dataset (the mask length)."""
    return int(
        (
            session.scalar(select(func.max(Sample.position)).where(Sample.dataset_id == dataset_id))
            or -1
        )
        + 1
    )


def stop_reason(ctx: JobContext, exc: EngineError) -> Exception:
    """Cancellation, stale ownership or the time limit if that is why the engine stopped;
    otherwise the engine's own message (diverged, bad data) becomes the job's error."""
    if ctx.should_stop():
        ctx.check()  # raises the precise reason: cancelled, stale or time limit
        return JobCancelled("stopped")
    return ValueError(str(exc))


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
        buffer = io.BytesIO(self.ctx.store.get_bytes(self.resume_key))
        # Our own file, but still loaded as tensors only: never unpickle arbitrary objects.
        return torch.load(buffer, map_location="cpu", weights_only=True)


@dataclass
class ForgetSplit:
    """A version's training set split by a forget scope, plus the test split."""

    trained: SampleSet
    forget_mask: np.ndarray
    test: ImageArrays | None
    forget_labels: list[int] | None
    # The scope's samples in the dataset version, trained on by the version or not.
    scope_count: int = 0

    @property
    def forget(self) -> ImageArrays:
        return self.trained.arrays.subset(np.flatnonzero(self.forget_mask))

    @property
    def retain(self) -> ImageArrays:
        return self.trained.arrays.subset(np.flatnonzero(~self.forget_mask))

    @property
    def retain_positions(self) -> np.ndarray:
        return self.trained.positions[~self.forget_mask]

    def label_coverage(self) -> dict[str, dict[str, Any]]:
        """Per label of the forget set: the version's training samples of that label, how
        many of them the scope holds, and the share (1.0: the scope is the whole class)."""
        labels = self.trained.arrays.labels
        forgotten = labels[self.forget_mask]
        out: dict[str, dict[str, Any]] = {}
        for label in np.unique(forgotten).tolist():
            trained = int((labels == label).sum())
            forget = int((forgotten == label).sum())
            out[str(label)] = {"trained": trained, "forget": forget, "share": forget / trained}
        return out


def split_for_forgetting(
    session: Session,
    reader: ShardReader,
    dataset_id: str,
    dataset_version: int,
    training_mask: bytes,
    scope: dict[str, list[Any]],
    *,
    trained_only: bool = False,
) -> ForgetSplit:
    """Forget = trained samples the scope names. By default, for an already-unlearned
    version (its mask no longer holds them) the scope's samples are added back so the same
    forget set can be measured on any version of the model; ``trained_only`` keeps only
    what the version was trained on (the evidence of an unlearning run: a sample the
    version never saw proves nothing about forgetting)."""
    mask = decode_mask(training_mask)
    kind = scope_kind(scope)
    column = {"subject_ids": "subject_id", "sample_ids": "sample_id", "labels": "label"}[kind]
    values = set(scope[kind])
    every = load_samples(session, reader, dataset_id, dataset_version, split="train")
    hit = np.asarray(
        [
            v in values
            for v in (
                every.subject_ids
                if column == "subject_id"
                else every.arrays.sample_ids
                if column == "sample_id"
                else every.arrays.labels.tolist()
            )
        ],
        dtype=bool,
    )
    in_mask = np.asarray([p < len(mask) and mask[p] for p in every.positions], dtype=bool)
    keep = np.flatnonzero(in_mask if trained_only else in_mask | hit)
    trained = SampleSet(
        arrays=every.arrays.subset(keep),
        subject_ids=[every.subject_ids[i] for i in keep],
        positions=every.positions[keep],
    )
    try:
        test = load_split(session, reader, dataset_id, dataset_version, "test").arrays
    except ValueError:
        test = None
    return ForgetSplit(
        trained=trained,
        forget_mask=hit[keep],
        test=test,
        forget_labels=[int(v) for v in scope[kind]] if kind == "labels" else None,
        scope_count=int(hit.sum()),
    )


def version_split(
    session: Session, reader: ShardReader, job: Job, version: ModelVersion
) -> tuple[ForgetSplit, int]:
    """``version``'s training samples split by ``job``'s forget scope (only the scope's
    samples it was trained on are forgotten and measured), and the size of the dataset
    (the length of the new version's training mask)."""
    spec = job.spec
    if version.training_mask is None:
        raise ValueError(f"version {version.id} has no lineage to split")
    split = split_for_forgetting(
        session,
        reader,
        spec["dataset_id"],
        int(spec["dataset_version"]),
        version.training_mask,
        spec["forget"],
        trained_only=True,
    )
    return split, dataset_size(session, spec["dataset_id"])
