"""A person's deletion request on a fine-tuned language model on the embedded default:
`expunge up --no-demo` (SQLite, local files, the local broker and its one worker). Two
fictitious people, a tiny llama fine-tuned on them, one person forgotten: the certificate
verifies with the served key, the person's text is gone from the stored shards, and the
request keeps no id in clear."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.client import ExpungeClient
from core.datasets import fictitious
from core.deletion.certificate import CONTEXT
from core.settings import Settings
from core.signing import verify_document
from tests.fixtures.s3server import free_port
from tests.services import REPO, die_with_parent
from tests.support import wait_for
from tests.support.lm_people import people_records, submit_finetune

pytestmark = pytest.mark.integration

KEY = "exp_embeddedlm001_" + "l" * 42


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ExpungeClient, Path]]:
    """`expunge up --no-demo` under its own home: the client (bootstrap admin) and home."""
    tmp = tmp_path_factory.mktemp("embedded-lm")
    home, port = tmp / "home", free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EXPUNGE_")},
        "EXPUNGE_HOME": str(home),
        "EXPUNGE_BOOTSTRAP_ADMIN_KEY": KEY,
        "OMP_NUM_THREADS": "1",
    }
    with (tmp / "up.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--no-demo", "--port", str(port)],
            preexec_fn=die_with_parent,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = ExpungeClient(f"http://127.0.0.1:{port}", KEY)

    def healthy() -> bool:
        assert proc.poll() is None, (tmp / "up.log").read_text()
        try:
            return client.health()["status"] == "ok"
        except Exception:
            return False

    try:
        wait_for(healthy, 120, lambda: (tmp / "up.log").read_text(), interval=0.5)
        yield client, home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        client.close()


def _embedded_settings(home: Path) -> Settings:
    """The same backends `expunge up` chose under ``home`` (SQLite, local broker, files)."""
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'expunge.db'}",
        broker_url=f"sqla+sqlite:///{home / 'broker.db'}",
        storage_url=f"file://{home / 'objects'}",
    )


def _stored_text(home: Path) -> str:
    return "\n".join(
        gzip.decompress(p.read_bytes()).decode() for p in (home / "objects").rglob("*.json.gz")
    )


def test_a_person_is_forgotten_on_the_embedded_default(
    up: tuple[ExpungeClient, Path], tmp_path: Path
) -> None:
    client, home = up
    tag = f"em{uuid.uuid4().hex[:6]}"
    records = people_records(tag, people=2, held_out=1, world_facts=10)
    upload = tmp_path / f"{tag}.jsonl"
    upload.write_text("\n".join(json.dumps(r) for r in records))
    dataset = client.upload_dataset(f"people-{tag}", upload, require_subjects="false")

    # REST train bodies do not take LM params yet: the job row is written to the embedded
    # database and the server's sweeper dispatches it to its worker.
    _, job_id = submit_finetune(_embedded_settings(home), dataset["id"], dispatch=False)
    trained = client.wait_for_job(job_id, timeout=300)
    assert trained["state"] == "succeeded", (
        trained,
        (home / "worker.log").read_text()[-3000:] if (home / "worker.log").exists() else "",
    )

    world = fictitious.generate_people(seed=0)
    first = world.people[0]
    person, name = f"{tag}-{first.person_id}", first.name
    assert name in _stored_text(home)

    filed = client.file_deletion_request({"subject_ids": [person]}, "gdpr_art17")
    assert filed["status"] == "awaiting_approval", filed
    assert filed["blast_radius"]["versions"] == [trained["result_version_id"]]
    compliance = client.create_key(f"approver-{tag}", "compliance")["key"]
    with ExpungeClient(client.base_url, compliance) as approver:
        approver.approve_deletion_request(filed["id"])
    done = client.wait_for_deletion_request(filed["id"], timeout=400)
    assert done["status"] == "completed", (done, (home / "worker.log").read_text()[-3000:])

    (item,) = done["items"]
    assert item["verdict"]["passed"] and item["result_version_id"]
    certificate = client.certificate(filed["id"])
    ok, why = verify_document(certificate, client.public_key(), CONTEXT)
    assert ok, why
    (entry,) = certificate["models"]
    assert entry["lineage"]["base_never_saw_the_data"] is True
    assert certificate["outcome"] == "erased"

    assert name not in _stored_text(home)  # the shards were rewritten without the person
    assert done["scope"]["redacted"] is True
    for attempt in item["verdict"]["attempts"]:
        job = client.job(attempt["job_id"])
        assert person not in json.dumps(job) and name not in json.dumps(job)
