"""The README's first command: `expunge up` on the embedded default (SQLite, local files,
a local broker and worker), with the demo data, driven through the typed client."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from core.client import ExpungeClient
from tests.fixtures.s3server import free_port
from tests.services import REPO, die_with_parent

pytestmark = pytest.mark.integration

KEY = "exp_embedded0001_" + "e" * 43


@pytest.mark.timeout(900)
def test_up_serves_demo_and_trains(tmp_path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")},
        "EXPUNGE_HOME": str(tmp_path / "home"),
        "EXPUNGE_BOOTSTRAP_ADMIN_KEY": KEY,
        "OMP_NUM_THREADS": "1",
    }
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "up", "--port", str(port)],
        preexec_fn=die_with_parent,
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = ExpungeClient(f"http://127.0.0.1:{port}", KEY)
    try:
        deadline = time.monotonic() + 300
        demo_job = None
        while time.monotonic() < deadline and demo_job is None:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            try:
                jobs = client.jobs(kind="train")["data"]
                demo_job = jobs[0] if jobs else None
            except Exception:
                pass
            time.sleep(1)
        assert demo_job is not None, (tmp_path / "up.log").read_text()
        finished = client.wait_for_job(demo_job["id"], timeout=300)
        assert finished["state"] == "succeeded", (
            finished,
            (tmp_path / "home" / "worker.log").read_text()[-3000:],
        )
        assert finished["metrics"]["test_accuracy"] > 0.8

        health = client.health()
        assert health["status"] == "ok" and health["database"]["detail"] == "sqlite"
        names = {d["name"] for d in client.datasets()["data"]}
        assert {"mnist", "orl-faces", "digits"} <= names
        orl = next(d for d in client.datasets()["data"] if d["name"] == "orl-faces")
        assert orl["num_subjects"] == 40
        models = {m["name"]: m for m in client.models()["data"]}
        assert models["digit-recognizer"]["latest_version"] == 1

        # Everything lives under EXPUNGE_HOME.
        home = tmp_path / "home"
        assert (home / "expunge.db").exists() and (home / "broker.db").exists()
        assert any((home / "objects").rglob("*.safetensors"))

        # Watch a second job live over SSE until it ends.
        job = client.train(
            models["demo-mnist-cnn"]["id"], finished["dataset_id"], {"max_train_samples": 200}
        )
        kinds = [event.get("event") for event in client.job_events(job["id"])]
        assert "progress" in kinds and kinds[-1] == "end"
        assert client.job(job["id"])["state"] == "succeeded"

        # A writer's deletion request on the embedded default, approved by a second person.
        trained = client.version(finished["result_version_id"])
        ids = client.get(f"/model-versions/{trained['id']}/sample-ids").decode().split()
        writer = next(
            s["subject_id"]
            for s in client.samples(finished["dataset_id"], limit=1000)["data"]
            if s["sample_id"] in set(ids) and s["subject_id"]
        )
        filed = client.post(
            "/deletion-requests",
            {"scope": {"subject_ids": [writer]}, "legal_basis": "gdpr_art17"},
        )
        assert filed["status"] == "awaiting_approval", filed
        approver = ExpungeClient(client.base_url, client.create_key("dpo", "compliance")["key"])
        approver.post(f"/deletion-requests/{filed['id']}/approve")
        deadline = time.monotonic() + 300
        while client.get(f"/deletion-requests/{filed['id']}")["status"] not in (
            "completed",
            "failed",
        ):
            assert time.monotonic() < deadline
            time.sleep(1)
        done = client.get(f"/deletion-requests/{filed['id']}")
        assert done["status"] == "completed", done
        certificate = client.get(f"/deletion-requests/{filed['id']}/certificate")
        assert certificate["outcome"] == "erased" and writer not in str(certificate)
        assert client.get("/audit/verify")["ok"]
        approver.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        client.close()
