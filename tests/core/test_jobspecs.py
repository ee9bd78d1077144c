"""The REST API and the deletion workflow build an unlearn job through one builder
(``core/jobspecs.py``): for the same version, method and scope their jobs carry the same
spec keys and values (the workflow adds only its request and item ids) and the same queue.
The two copies used to differ (the workflow's jobs had no ``family``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from api.jobs.schemas import UnlearnJobCreate
from api.jobs.service import create_unlearn_job
from core import migrate
from core.db import make_engine
from core.deletion import flows
from core.jobspecs import WORKFLOW_KEYS
from core.settings import Settings
from models import ModelVersion
from tests.support.db import deletion_world


@pytest.mark.parametrize(
    ("method", "params", "queue"),
    [
        ("finetune", {"epochs": 1, "device": "cuda"}, "gpu"),
        ("finetune", {"epochs": 1}, "cpu"),
        ("retrain", {"device": "cuda:1"}, "gpu"),
    ],
)
def test_rest_and_workflow_build_the_same_unlearn_spec(
    tmp_path: Path, method: str, params: dict[str, Any], queue: str
) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    with Session(make_engine(url)) as session:
        request, item = deletion_world(session, {"method": method, "method_params": params})
        item.method, item.exact = method, method == "retrain"
        workflow = flows._start(session, request, item)
        assert workflow is not None
        version = session.get(ModelVersion, "v1")
        assert version is not None
        version.status = "active"  # the API unlearns active versions only
        (rest,) = create_unlearn_job(
            session,
            UnlearnJobCreate.model_validate(
                {
                    "kind": "unlearn",
                    "model_version_id": "v1",
                    "method": method,
                    "forget": {"subject_ids": ["alice"]},
                    "params": params,
                }
            ),
            "someone",
        )
        assert set(workflow.spec) - set(rest.spec) == set(WORKFLOW_KEYS)
        assert set(rest.spec) <= set(workflow.spec)
        for key in rest.spec:
            assert workflow.spec[key] == rest.spec[key], key
        assert (workflow.queue, rest.queue) == (queue, queue)
        assert (workflow.method, workflow.model_version_id) == (rest.method, rest.model_version_id)
