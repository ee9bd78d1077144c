"""Job submission and control. Services never commit; the router commits, then dispatches."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.datasets import repository as datasets
from api.jobs import repository
from api.jobs.schemas import EvaluateJobCreate, TrainJobCreate
from core.errors import Conflict, NotFound, Unprocessable
from core.jobs import state_event
from models import Dataset, DatasetVersion, Job, Model, ModelVersion, Sample
from models.base import new_id, utcnow
from models.jobs import TERMINAL_STATES
from workers.engine.config import ArchitectureConfig


def get_or_404(session: Session, job_id: str) -> Job:
    job = repository.get(session, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


def _queue_for(device: str) -> str:
    return "gpu" if device.startswith("cuda") else "cpu"


def _dataset_version(
    session: Session, dataset_id: str, number: int | None, field: str
) -> tuple[Dataset, DatasetVersion]:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} not found")
    number = number or dataset.current_version
    version = datasets.version(session, dataset_id, number)
    if version is None:
        raise Unprocessable(f"dataset {dataset_id} has no version {number}", field=field)
    return dataset, version


def _count_split(session: Session, dataset_id: str, version: int, split: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Sample)
            .where(
                Sample.dataset_id == dataset_id,
                Sample.split == split,
                datasets.in_version(version),
            )
        )
        or 0
    )


def create_train_job(session: Session, body: TrainJobCreate, created_by: str) -> Job:
    model = session.get(Model, body.model_id)
    if model is None:
        raise NotFound(f"model {body.model_id} not found")
    if model.family != "classifier":
        raise Unprocessable(
            f"training {model.family!r} models is not supported yet", field="model_id"
        )
    dataset, version = _dataset_version(
        session, body.dataset_id, body.dataset_version, "dataset_version"
    )
    arch = ArchitectureConfig.model_validate(model.architecture)
    if len(dataset.label_names) > arch.num_classes:
        raise Unprocessable(
            f"dataset {dataset.name!r} has {len(dataset.label_names)} classes but the model's "
            f"architecture has num_classes={arch.num_classes}; register a model with at least "
            f"{len(dataset.label_names)} classes",
            field="dataset_id",
        )
    if _count_split(session, dataset.id, version.version, "train") == 0:
        raise Unprocessable(f"dataset {dataset.name!r} has no training samples", field="dataset_id")
    if body.parent_version_id is not None:
        parent = session.get(ModelVersion, body.parent_version_id)
        if parent is None or parent.model_id != model.id:
            raise Unprocessable(
                f"parent version {body.parent_version_id} is not a version of model {model.id}",
                field="parent_version_id",
            )
        if parent.status != "active":
            raise Conflict(
                f"parent version {parent.id} is {parent.status}; only active ones can be fine-tuned"
            )
    job = Job(
        id=new_id("job"),
        kind="train",
        state="queued",
        queue=_queue_for(body.params.device),
        model_id=model.id,
        dataset_id=dataset.id,
        model_version_id=body.parent_version_id,
        params=body.params.model_dump(mode="json"),
        spec={"dataset_version": version.version, "dataset_version_id": version.id},
        created_by=created_by,
    )
    session.add(job)
    session.flush()
    state_event(session, job.id, "queued")
    return job


def create_evaluate_job(session: Session, body: EvaluateJobCreate, created_by: str) -> Job:
    mv = session.get(ModelVersion, body.model_version_id)
    if mv is None:
        raise NotFound(f"model version {body.model_version_id} not found")
    if mv.status == "purged":
        raise Conflict(f"model version {mv.id} is purged; its checkpoint no longer exists")
    dataset_id = body.dataset_id
    if dataset_id is None:
        if mv.dataset_version_id is None:
            raise Unprocessable(
                "this version was uploaded, so it has no training dataset: give dataset_id",
                field="dataset_id",
            )
        dsv = session.get(DatasetVersion, mv.dataset_version_id)
        assert dsv is not None
        dataset_id = dsv.dataset_id
    dataset, version = _dataset_version(
        session, dataset_id, body.dataset_version, "dataset_version"
    )
    for split in body.splits:
        if _count_split(session, dataset.id, version.version, split) == 0:
            raise Unprocessable(
                f"dataset {dataset.name!r} has no {split!r} samples", field="splits"
            )
    job = Job(
        id=new_id("job"),
        kind="evaluate",
        state="queued",
        queue=_queue_for(body.params.device),
        model_id=mv.model_id,
        dataset_id=dataset.id,
        model_version_id=mv.id,
        params=body.params.model_dump(mode="json"),
        spec={
            "dataset_version": version.version,
            "dataset_version_id": version.id,
            "splits": body.splits,
        },
        created_by=created_by,
    )
    session.add(job)
    session.flush()
    state_event(session, job.id, "queued")
    return job


def cancel(session: Session, job: Job) -> Job:
    """Queued jobs stop at once; running ones are asked to stop at their next step."""
    if job.state in TERMINAL_STATES:
        raise Conflict(f"job {job.id} is already {job.state}")
    if repository.transition(
        session,
        job.id,
        ("queued", "lost"),
        state="cancelled",
        finished_at=utcnow(),
        cancel_requested=True,
    ):
        state_event(session, job.id, "cancelled", reason="cancelled before it started")
    elif repository.transition(
        session, job.id, ("running",), state="cancelling", cancel_requested=True
    ):
        state_event(session, job.id, "cancelling")
    session.flush()
    session.refresh(job)
    return job
