"""Worker faults: a job out of memory or out of time fails with the reason while the
worker keeps serving; two workers share one queue and one stopping does not stop the
service; a SIGKILLed job that is given up on leaves no objects behind.

Each runs real ``expunge worker`` processes on a private stack (see fault_stack.py).
"""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from core.jobs import sweep_once
from tests.fixtures.fault_stack import FaultStack, TunedWorker, fault_stack
from tests.fixtures.s3server import S3Server
from tests.support import wait_for
from workers.context import MemoryCap, is_out_of_memory

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    storage = {
        "storage_url": f"s3://{s3_server.endpoint}/faults-worker?secure=false",
        "s3_access_key": s3_server.access_key,
        "s3_secret_key": s3_server.secret_key,
    }
    with fault_stack(tmp_path_factory.mktemp("faults-worker"), storage) as built:
        assert built.dataset["id"]
        yield built


def test_memory_cap_refuses_an_allocation_past_it_and_lifts_afterwards() -> None:
    before = resource.getrlimit(resource.RLIMIT_AS)
    with MemoryCap(64):
        with pytest.raises(MemoryError) as caught:
            bytearray(512 * 2**20)
        assert is_out_of_memory(caught.value)
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(512 * 2**20)) == 512 * 2**20  # the process is unharmed
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


@pytest.fixture(scope="module")
def limited(stack: FaultStack) -> Iterator[TunedWorker]:
    """A worker with an 8 s job time limit and a 512 MiB job memory cap; warmed up by
    one job, so the tests below do not wait for its first import of torch."""
    worker = stack.worker("limited", job_time_limit_seconds=8, job_memory_limit_mb=512)
    try:
        warm = stack.wait(stack.train(epochs=1)["id"], {"succeeded", "failed"})
        assert warm["state"] == "succeeded", (warm, worker.log()[-3000:])
        yield worker
    finally:
        worker.stop()


def test_out_of_memory_and_time_limit_fail_the_job_and_the_worker_serves_on(
    stack: FaultStack, limited: TunedWorker
) -> None:
    worker = limited
    # A legitimate request that needs far more than the cap: 300 images through a
    # 512-channel conv layer is ~0.5 GB for one activation alone.
    greedy = stack.new_model({"name": "small_cnn", "num_classes": 10, "width": 512})
    oom = stack.wait(
        stack.train(greedy, max_train_samples=300, batch_size=300)["id"],
        {"succeeded", "failed"},
    )
    assert oom["state"] == "failed", oom
    assert oom["error"].startswith("out of memory (job memory limit 512 MiB)"), oom
    assert oom["result_version_id"] is None

    slow = stack.wait(stack.train(epochs=500, max_train_samples=300)["id"], {"succeeded", "failed"})
    assert slow["state"] == "failed", slow
    assert "time limit of 8s" in slow["error"], slow

    fine = stack.wait(stack.train(epochs=1)["id"], {"succeeded", "failed"})
    assert fine["state"] == "succeeded", (fine, worker.log()[-3000:])
    # The same process ran all three: it survived both failures.
    assert {oom["worker"], slow["worker"], fine["worker"]} == {fine["worker"]}
    assert fine["worker"].endswith(worker.name_suffix)
    assert worker.proc.poll() is None


def test_two_workers_share_the_queue_and_stopping_one_does_not_stop_the_service(
    stack: FaultStack, limited: TunedWorker
) -> None:
    first, second = limited, stack.worker("second")
    try:
        jobs = [stack.train(epochs=1) for _ in range(6)]
        done = [stack.wait(j["id"], {"succeeded", "failed"}) for j in jobs]
        assert all(d["state"] == "succeeded" for d in done), done
        names = {d["worker"] for d in done}
        assert len(names) == 2, names  # both took work from the one queue

        first.stop()  # SIGTERM: Celery's warm shutdown
        assert first.proc.returncode is not None
        later = [stack.train(epochs=1) for _ in range(3)]
        after = [stack.wait(j["id"], {"succeeded", "failed"}) for j in later]
        assert all(d["state"] == "succeeded" for d in after), after
        assert {d["worker"] for d in after} == {n for n in names if n.endswith(second.name_suffix)}
    finally:
        first.stop()
        second.stop()


def test_sigkilled_job_given_up_on_leaves_no_objects(stack: FaultStack) -> None:
    doomed = stack.worker("doomed")
    model = stack.new_model()
    job = stack.train(model, epochs=500, max_train_samples=300, checkpoint_every_steps=4)
    resume = f"jobs/{job['id']}/resume.pt"
    wait_for(lambda: stack.store.exists(resume), 120, "a resume checkpoint", interval=0.1)
    # What a kill in the middle of publishing leaves: a version file with no version row.
    # (Written by the test: timing a real kill into that window is not reliable.)
    partial = f"models/{model['id']}/jobs/{job['id']}/model.safetensors"
    stack.store.put_bytes(partial, b"half a checkpoint")
    doomed.kill()  # SIGKILL: no clean-up, no final state

    # The sweeper finds it lost; with no attempts left it gives up and sweeps its objects.
    give_up = stack.settings.model_copy(update={"max_attempts": 1})

    def swept() -> dict:
        sweep_once(give_up, stack.store)
        return stack.job(job["id"])

    failed = wait_for(swept, 30, "the lost job to fail", until=lambda j: j["state"] == "failed")
    assert "worker lost" in failed["error"], failed
    assert list(stack.store.list(f"jobs/{job['id']}")) == []
    assert list(stack.store.list(f"models/{model['id']}")) == []
    assert stack.api.get(f"/api/v1/models/{model['id']}/versions").json()["data"] == []
