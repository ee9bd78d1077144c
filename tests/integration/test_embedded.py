"""The README's first command: `expunge up` on the embedded default (SQLite, local files,
a local broker and worker), with the demo data, driven through the typed client."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.audit.anchor import verify_certificate_anchor
from core.client import ExpungeClient
from core.deletion.certificate import CONTEXT
from core.signing import verify_document
from tests.fixtures.s3server import free_port
from tests.services import REPO, die_with_parent
from tests.support import wait_for
from tests.support.diffusion import LENIENT, TINY8, TINY_T2I, TINY_TRAIN, judged_attempt
from tests.support.rest import people_archive

pytestmark = pytest.mark.integration

KEY = "exp_embedded0001_" + "e" * 43


@dataclass
class Embedded:
    client: ExpungeClient
    home: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def answer(self, call: Callable[[], Any]) -> Any:
        """``call()``'s answer, or None while the server does not answer yet; fails at once
        if the server died."""
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return call()
        except Exception:
            return None


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    """One `expunge up` for the module: its worker runs the tests' jobs one at a time."""
    tmp_path = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")},
        "EXPUNGE_HOME": str(tmp_path / "home"),
        "EXPUNGE_BOOTSTRAP_ADMIN_KEY": KEY,
        "OMP_NUM_THREADS": "1",
    }
    log = (tmp_path / "up.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--port", str(port)],
        preexec_fn=die_with_parent,
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = ExpungeClient(f"http://127.0.0.1:{port}", KEY)
    try:
        yield Embedded(client, tmp_path / "home", tmp_path / "up.log", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        client.close()


@pytest.mark.timeout(900)
def test_up_serves_demo_and_trains(embedded: Embedded) -> None:
    client = embedded.client
    jobs = wait_for(
        lambda: embedded.answer(lambda: client.jobs(kind="train")["data"]),
        300,
        lambda: f"the demo's train job; the server's log:\n{embedded.log.read_text()}",
        interval=1,
    )
    demo_job = jobs[0]
    finished = client.wait_for_job(demo_job["id"], timeout=300)
    assert finished["state"] == "succeeded", (
        finished,
        (embedded.home / "worker.log").read_text()[-3000:],
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
    # The demo's state changes are all in the audit log, and it verifies.
    events = client.get("/audit/events", limit=500, order="asc")["data"]
    actions = Counter(e["action"] for e in events)
    assert actions["dataset.created"] == 4 and actions["dataset_version.created"] == 4, actions
    assert actions["model.created"] == 2 and actions["model_version.created"] == 2, actions
    assert actions["job.queued"] >= 1 and actions["job.succeeded"] >= 1, actions
    assert actions["api_key.created"] == 1, actions  # the bootstrap admin key
    assert client.get("/audit/verify")["ok"] is True

    # Everything lives under EXPUNGE_HOME.
    home = embedded.home
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
    wait_for(
        lambda: client.get(f"/deletion-requests/{filed['id']}")["status"],
        300,
        f"request {filed['id']} to finish",
        until=lambda status: status in ("completed", "failed"),
        interval=1,
    )
    done = client.get(f"/deletion-requests/{filed['id']}")
    assert done["status"] == "completed", done
    certificate = client.get(f"/deletion-requests/{filed['id']}/certificate")
    # The demo's uploaded digit-recognizer has no lineage: named, and not a bare "erased".
    assert certificate["outcome"] == "erased_where_known" and writer not in str(certificate)
    unknown = {u["model_id"]: u["note"] for u in certificate["unknown_lineage"]}
    assert unknown[models["digit-recognizer"]["id"]].startswith("lineage unknown")
    assert client.get("/audit/verify")["ok"]
    # Anchored on SQLite too: after the issuing commit, in the worker's process.
    anchor = client.get(f"/audit/certificates/{filed['id']}/anchor")
    checks = verify_certificate_anchor(certificate, anchor, [client.public_key()])
    assert checks and all(passed for passed, _ in checks), checks
    approver.close()


def _erase_and_certify(
    embedded: Embedded, approver: ExpungeClient, scope: dict, legal_basis: str = "other"
) -> dict:
    """File → a second person approves → the workflow runs → the certificate verifies
    offline with the served public key."""
    client = embedded.client
    filed = client.file_deletion_request(scope, legal_basis)
    assert filed["status"] == "awaiting_approval", filed
    approver.approve_deletion_request(filed["id"])
    done = client.wait_for_deletion_request(filed["id"], timeout=600)
    assert done["status"] == "completed", (
        done,
        (embedded.home / "worker.log").read_text()[-3000:],
    )
    certificate = client.certificate(filed["id"])
    ok, why = verify_document(certificate, client.public_key(), CONTEXT)
    assert ok, why
    return done


def _stored(embedded: Embedded, fragment: str) -> list[Path]:
    return [p for p in (embedded.home / "objects").rglob("*") if fragment in str(p)]


@pytest.mark.timeout(1200)
def test_diffusion_families_forget_on_the_embedded_default(
    embedded: Embedded, tmp_path: Path
) -> None:
    """ddpm and text2image, each: train → a concept request (by name, by labels) erased
    with the family's approximate method and judged → a subject request retrained
    (exact) → the old checkpoints and the subject's bytes gone from the local store."""
    client = embedded.client
    wait_for(  # the module's server may still be starting
        lambda: embedded.answer(client.health),
        300,
        lambda: f"the server to answer; its log:\n{embedded.log.read_text()}",
        until=lambda health: health is not None,
        interval=1,
    )
    approver = ExpungeClient(
        client.base_url, client.create_key(f"dpo-{uuid.uuid4().hex[:6]}", "compliance")["key"]
    )
    families = [
        (
            TINY8,
            TINY_TRAIN,
            {"name": "1"},
            {
                "class_method_params": {
                    "steps": 3,
                    "batch_size": 4,
                    "trajectories": 1,
                    "ddim_steps": 2,
                }
            },
        ),
        (TINY_T2I, TINY_TRAIN, {"labels": [1, 3]}, {}),
    ]
    try:
        for arch, train_params, concept, extra_policy in families:
            tag = f"em{uuid.uuid4().hex[:8]}"
            archive = tmp_path / f"{tag}.zip"
            archive.write_bytes(people_archive(tag))
            ds = client.upload_dataset(f"people-{tag}", archive)
            model = client.create_model(f"{arch['family']}-{tag}", arch)
            client.set_deletion_policy(model["id"], {**LENIENT, **extra_policy})
            trained = client.wait_for_job(
                client.train(model["id"], ds["id"], train_params)["id"], timeout=600
            )
            assert trained["state"] == "succeeded", (
                trained,
                (embedded.home / "worker.log").read_text()[-3000:],
            )
            original = client.version(trained["result_version_id"])

            done = _erase_and_certify(
                embedded, approver, {"concept": {"model_id": model["id"], **concept}}
            )
            [item] = done["items"]
            judged_attempt(item, "esd" if arch["family"] == "ddpm" else "uce")
            erased = client.version(item["result_version_id"])
            erased_job = item["job_id"]
            assert erased["status"] == "active" and _stored(embedded, erased_job)
            assert client.version(original["id"])["status"] == "purged"
            assert not _stored(embedded, trained["id"])

            subject = f"{tag}-p2"  # images of label 2, still in the erased version
            image_url = client.samples(ds["id"], subject_id=subject)["data"][0]["image_url"]
            assert client.http.get(image_url).status_code == 200
            done = _erase_and_certify(embedded, approver, {"subject_ids": [subject]}, "gdpr_art17")
            [item] = done["items"]
            assert item["method"] == "retrain" and item["exact"], item
            assert client.version(erased["id"])["status"] == "purged"
            assert not _stored(embedded, erased_job)
            assert client.http.get(image_url).status_code == 404  # the raw bytes are gone
            assert client.samples(ds["id"], subject_id=subject)["data"] == []
            dataset = client.dataset(ds["id"])
            assert dataset["current_version"] == 2
        assert client.get("/audit/verify")["ok"]
    finally:
        approver.close()
