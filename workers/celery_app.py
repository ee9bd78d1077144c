"""The worker's Celery app: one thin task that hands a job id to the runner."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from core.jobs import Sweeper
from core.queue import RUN_JOB_TASK, get_celery
from core.settings import get_settings

log = logging.getLogger("expunge.worker")
app = get_celery()
_state: dict[str, Any] = {}


def _set_threads() -> None:
    # A torch thread pool shared with other busy processes slows down 30-90x here.
    import torch

    torch.set_num_threads(get_settings().torch_threads)


@worker_process_init.connect
def _init_process(**_: Any) -> None:
    _set_threads()


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    _set_threads()
    _state["sweeper"] = Sweeper(get_settings(), store=_runner().store).start()


@worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    sweeper = _state.pop("sweeper", None)
    if sweeper is not None:
        sweeper.stop()


def _runner() -> Any:
    if "runner" not in _state:
        from workers.runner import Runner

        _state["runner"] = Runner(get_settings())
    return _state["runner"]


@app.task(name=RUN_JOB_TASK, acks_late=True, ignore_result=True)
def run_job(job_id: str, **_: Any) -> str | None:
    return _runner().run(job_id)
