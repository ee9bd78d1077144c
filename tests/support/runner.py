"""Jobs run in-process by the runner (no queue, no worker process), for worker tests."""

from __future__ import annotations

from typing import Any

from contracts.ddpm import DiffusionArchitecture
from core.db import session_factory
from models import Job
from models.base import utcnow
from tests.support.db import job_row
from workers.runner import Runner

TINY8 = DiffusionArchitecture.preset("tiny8", 10).model_dump(mode="json")
TRAIN = {"steps": 4, "batch_size": 8, "lr_warmup_steps": 1, "log_every_steps": 2}
JUDGE = {"samples_per_class": 2, "num_inference_steps": 2, "real_images": 20}


def commit_job(settings: Any, create: Any, body: Any) -> str:
    """A committed job that no queue carries: marked dispatched, so a worker process's
    sweeper (alive when integration tests ran first) never sends it and races the runner."""
    with session_factory(settings)() as session:
        jobs = create(session, body, created_by="test")
        job = jobs[-1] if isinstance(jobs, list) else jobs
        job.dispatched_at = utcnow()
        session.commit()
        return job.id


def run_job(settings: Any, app: Any, job_id: str) -> Job:
    """Run the job here; it must succeed. Its row afterwards."""
    assert Runner(settings, app.state.store).run(job_id) == "succeeded", job_row(settings, job_id)
    return job_row(settings, job_id)
