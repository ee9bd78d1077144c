"""Rows read and written straight in the database, for tests that look under the API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from core.db import session_factory
from core.lineage import encode_mask
from core.registry import add_model_version
from models import (
    Dataset,
    DatasetVersion,
    DeletionItem,
    DeletionRequest,
    Job,
    Model,
    ModelVersion,
    Sample,
)
from models.base import utcnow

WORLD_SAMPLES = 20


def job_row(settings: Any, job_id: str) -> Job:
    with session_factory(settings)() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def version_row(settings: Any, version_id: str) -> ModelVersion:
    with session_factory(settings)() as session:
        version = session.get(ModelVersion, version_id)
        session.expunge(version)
        return version


def fake_version(settings: Any, model_id: str) -> str:
    """A version row without a checkpoint: enough for requests refused before any job."""
    with session_factory(settings)() as session:
        version = add_model_version(
            session,
            model_id,
            status="active",
            source="upload",
            checkpoint_key=f"models/{model_id}/none.safetensors",
            config_key=f"models/{model_id}/none.json",
            sha256="0" * 64,
            size_bytes=0,
            config={},
            metrics={},
        )
        session.commit()
        return version.id


def deletion_world(
    session: Session, policy: dict[str, Any]
) -> tuple[DeletionRequest, DeletionItem]:
    """A subject request (on "alice", 3 of 20 samples) with one item on a tainted version
    of a classifier whose deletion policy is ``policy``; flushed, not committed."""
    n = WORLD_SAMPLES
    session.add(Dataset(id="ds1", name="d", source="s", image_shape=[1, 1, 1]))
    session.add(
        DatasetVersion(id="dsv1", dataset_id="ds1", version=1, content_hash="0", num_samples=n)
    )
    session.add_all(
        Sample(
            dataset_id="ds1",
            sample_id=f"s{p}",
            subject_id="alice" if p < 3 else f"x{p}",
            label=p % 2,
            shard_key="k",
            shard_index=p,
            position=p,
        )
        for p in range(n)
    )
    session.add(
        Model(
            id="m1", name="m1", family="classifier", architecture={}, deletion_policy=policy
        )
    )
    session.flush()
    session.add(
        ModelVersion(
            id="v1",
            model_id="m1",
            version=1,
            status="tainted",
            source="train",
            checkpoint_key="models/m1/v1/model.safetensors",
            config_key="models/m1/v1/config.json",
            sha256="0" * 64,
            size_bytes=1,
            dataset_version_id="dsv1",
            training_mask=encode_mask(list(range(n)), n),
            config={},
        )
    )
    now = utcnow()
    request = DeletionRequest(
        id="dr1",
        status="unlearning",
        scope={"subject_ids": ["alice"]},
        scope_kind="subject_ids",
        legal_basis="other",
        received_at=now,
        due_at=now + timedelta(days=30),
    )
    session.add(request)
    session.flush()
    item = DeletionItem(
        id="it1", request_id="dr1", model_version_id="v1", method="finetune", exact=False
    )
    session.add(item)
    session.flush()
    return request, item
