"""A deletion policy that asks for a GPU reaches the GPU queue, for the approximate method
and for the exact fallback alike (the workflow used to enqueue every run on "cpu")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion import flows
from core.lineage import encode_mask
from core.settings import Settings
from models import (
    Dataset,
    DatasetVersion,
    DeletionItem,
    DeletionRequest,
    Model,
    ModelVersion,
    Sample,
)
from models.base import utcnow

N = 20


def _world(session: Session, policy: dict[str, Any]) -> tuple[DeletionRequest, DeletionItem]:
    session.add(Dataset(id="ds1", name="d", source="s", image_shape=[1, 1, 1]))
    session.add(
        DatasetVersion(id="dsv1", dataset_id="ds1", version=1, content_hash="0", num_samples=N)
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
        for p in range(N)
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
            training_mask=encode_mask(list(range(N)), N),
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


@pytest.mark.parametrize(
    ("policy", "method", "queue"),
    [
        ({"method_params": {"epochs": 1, "device": "cuda"}}, "finetune", "gpu"),
        ({"method_params": {"epochs": 1, "device": "cuda:1"}}, "retrain", "gpu"),
        ({"method_params": {"epochs": 1}}, "finetune", "cpu"),
        ({"method_params": {"epochs": 1, "device": "cpu"}}, "retrain", "cpu"),
    ],
)
def test_policy_device_picks_the_queue(
    tmp_path: Path, policy: dict[str, Any], method: str, queue: str
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    with Session(make_engine(url)) as session:
        request, item = _world(session, policy)
        item.method, item.exact = method, method == "retrain"
        job = flows._start(session, request, item)
        assert job is not None
        assert job.queue == queue
        if queue == "gpu":
            # The worker that takes it runs the method on the device the policy named.
            assert str(job.params["device"]).startswith("cuda")
