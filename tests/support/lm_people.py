"""A small fictitious-people text dataset and a tiny-llama fine-tune, for deletion tests.

The records come from the seeded generator (``core.datasets.fictitious``), with every id
prefixed by a tag so the people exist in no other test's dataset: a subject request on
one of them touches this test's versions and samples only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from api.models.service import create_model
from contracts.causal_lm import LMArchitecture, LMTrainParams
from core.datasets import fictitious
from core.db import session_factory
from core.jobs import new_job
from core.queue import send_job
from models import DatasetVersion

TINY = LMArchitecture(base="tiny-llama", hidden_size=64, num_hidden_layers=2, seed=3)
# Enough epochs for the tiny llama to memorise its three people (the verdict's checks
# then fail on the untouched fine-tune), about 15 s on one thread.
TRAIN = LMTrainParams(epochs=15, lr=3e-3, batch_size=16, max_length=96, checkpoint_every_steps=0)


def people_records(
    tag: str, people: int = 3, held_out: int = 2, world_facts: int = 20
) -> list[dict[str, Any]]:
    """``people`` trained people (QA + biography), ``held_out`` test-split people and
    ``world_facts`` facts about nobody; ids and subjects prefixed with ``tag``."""
    world = fictitious.generate_people(seed=0)
    keep = {p.person_id for p in (*world.people[:people], *world.held_out[:held_out])}
    facts = {q.qa_id for q in world.world_facts[:world_facts]}
    out = []
    for row in fictitious.world_records(world):
        subject = row["subject_id"]
        if (subject is None and row["sample_id"] not in facts) or (
            subject is not None and subject not in keep
        ):
            continue
        record = {k: v for k, v in row.items() if v is not None}
        record["sample_id"] = f"{tag}-{row['sample_id']}"
        if subject is not None:
            record["subject_id"] = f"{tag}-{subject}"
        out.append(record)
    return out


def upload_people(api: Any, tag: str, **sizes: int) -> dict[str, Any]:
    """Upload ``people_records`` as a JSONL text dataset (world facts have no subject)."""
    body = "\n".join(json.dumps(r) for r in people_records(tag, **sizes)).encode()
    response = api.post(
        "/api/v1/datasets/upload",
        files={"file": (f"{tag}.jsonl", body, "application/x-ndjson")},
        data={"name": f"people-{tag}", "require_subjects": "false"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def submit_finetune(
    settings: Any, dataset_id: str, params: LMTrainParams = TRAIN, dispatch: bool = True
) -> tuple[str, str]:
    """A causal_lm model and its fine-tune job on the dataset's latest version, created by
    the service layer (REST train bodies do not take LM params yet); (model id, job id)."""
    factory = session_factory(settings)
    with factory() as session:
        model = create_model(session, f"lm-{uuid.uuid4().hex[:8]}", "causal_lm", TINY, "", "test")
        dsv = (
            session.query(DatasetVersion)
            .filter(DatasetVersion.dataset_id == dataset_id)
            .order_by(DatasetVersion.version.desc())
            .first()
        )
        assert dsv is not None
        job = new_job(
            session,
            "train",
            "test",
            queue="cpu",
            model_id=model.id,
            dataset_id=dataset_id,
            params=params.model_dump(mode="json"),
            spec={"dataset_version": dsv.version, "dataset_version_id": dsv.id},
        )
        session.commit()
        if dispatch:
            send_job(session, job.id, job.queue, settings)
            session.commit()
        return model.id, job.id
