"""A deletion policy that asks for a GPU reaches the GPU queue, for the approximate method
and for the exact fallback alike (the workflow used to enqueue every run on "cpu")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion import flows
from core.settings import Settings
from tests.support.db import deletion_world


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
        request, item = deletion_world(session, policy)
        item.method, item.exact = method, method == "retrain"
        job = flows._start(session, request, item)
        assert job is not None
        assert job.queue == queue
        if queue == "gpu":
            # The worker that takes it runs the method on the device the policy named.
            assert str(job.params["device"]).startswith("cuda")
