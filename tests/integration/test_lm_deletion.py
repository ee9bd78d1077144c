"""A person's deletion request on a fine-tuned language model, on the production stack
(Postgres, Redis, the S3 server, a real worker process): upload a small fictitious-people
text dataset, fine-tune a tiny llama on it, file a subject request, approve it (a second
person), let the worker and the workflow run it — the approximate method verified on the
causal_lm checks, the exact re-fine-tune from the base where it fails — and check the
certificate (offline, with ``expunge certificate verify``), the purge of the person's
text from the shards and the redaction of the ids and of the answers about the person."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli import cli
from core.datasets import fictitious
from core.db import session_factory
from models import Sample
from tests.support import wait_for
from tests.support.lm_people import submit_finetune, upload_people
from tests.support.rest import certificate_verifies, key_headers, wait_job, wait_request

pytestmark = pytest.mark.integration


def _shard_texts(app: Any, settings: Any, dataset_id: str) -> str:
    """Every text shard object stored where the dataset's shards live, decompressed."""
    with session_factory(settings)() as session:
        keys = set(session.scalars(select(Sample.shard_key).where(Sample.dataset_id == dataset_id)))
    store = app.state.store
    folders = {key.rsplit("/", 1)[0] + "/" for key in keys}
    texts = [
        gzip.decompress(store.get_bytes(key)).decode()
        for folder in folders
        for key in store.list(folder)
        if key.endswith(".json.gz")
    ]
    assert texts, f"no text shards for dataset {dataset_id}"
    return "\n".join(texts)


# Set to write the request page's fixture (frontend/src/test/deletion/lm-answers.json).
RECORD = os.environ.get("EXPUNGE_RECORD_FIXTURES") == "1"
FIXTURE = Path(__file__).parents[2] / "frontend/src/test/deletion/lm-answers.json"


def _record(api: Any, open_request: dict, npo_job: dict, done: dict) -> None:
    """The API's answers the dashboard's before/after view renders, open and closed."""
    jobs_after = {
        a["job_id"]: api.get(f"/api/v1/jobs/{a['job_id']}").json()
        for a in done["items"][0]["verdict"]["attempts"]
    }
    FIXTURE.write_text(
        json.dumps(
            {
                "open": {"request": open_request, "jobs": {npo_job["id"]: npo_job}},
                "closed": {"request": done, "jobs": jobs_after},
            },
            indent=1,
            sort_keys=True,
        )
        + "\n"
    )


def test_a_person_is_forgotten_from_a_fine_tuned_llm(
    api: Any, anon: Any, app: Any, worker: Any, prod_settings: Any, tmp_path: Path
) -> None:
    tag = f"lm{uuid.uuid4().hex[:6]}"
    dataset = upload_people(api, tag)
    model_id, job_id = submit_finetune(prod_settings, dataset["id"])
    trained = wait_job(api, job_id, {"succeeded", "failed"})
    assert trained["state"] == "succeeded", (trained, worker.log()[-3000:])
    version_id = trained["result_version_id"]

    samples = api.get(
        f"/api/v1/datasets/{dataset['id']}/samples", params={"split": "train", "limit": 200}
    ).json()["data"]
    person = sorted({s["subject_id"] for s in samples if s["subject_id"]})[0]
    world = fictitious.generate_people(seed=0)
    full_name = next(p.name for p in world.people if f"{tag}-{p.person_id}" == person)
    assert full_name in _shard_texts(app, prod_settings, dataset["id"])

    filed = api.post(
        "/api/v1/deletion-requests",
        json={"scope": {"subject_ids": [person]}, "legal_basis": "gdpr_art17"},
    )
    assert filed.status_code == 201, filed.text
    request = filed.json()
    # The person's 20 answers and biography, in the one version fine-tuned on them.
    assert request["blast_radius"]["versions"] == [version_id]
    assert request["blast_radius"]["samples"] == 21
    (plan,) = request["plan"]
    assert plan["method"] == "simnpo" and plan["fallback"] == "retrain" and not plan["exact"]
    assert "base" in plan["lineage"] and plan["lineage"]["base"]["name"] == "tiny-llama"

    approved = anon.post(
        f"/api/v1/deletion-requests/{request['id']}/approve",
        headers=key_headers(api, "compliance"),
    )
    assert approved.status_code == 200, approved.text

    # The policy's SimNPO (lr 1e-4, sized for SmolLM2) barely moves a tiny llama trained at
    # 3e-3: its stop rule never finds the person at the strangers' level, the verdict
    # refuses it like the original, and the exact re-fine-tune runs. Meanwhile the request
    # page shows the person's questions answered before and after the refused attempt.
    def fell_back() -> dict[str, Any] | None:
        current = api.get(f"/api/v1/deletion-requests/{request['id']}").json()
        (each,) = current["items"]
        return current if each["method"] == "retrain" and each["attempt"] == 2 else None

    open_request = wait_for(fell_back, 300, "the fallback to start", interval=0.5)
    first_job = open_request["items"][0]["verdict"]["attempts"][0]["job_id"]
    npo_job = api.get(f"/api/v1/jobs/{first_job}").json()
    # The run scored at most the policy's lm_eval_items per group, after the precheck
    # found the fine-tune distinguishable under the policy's thresholds (the method ran).
    assert npo_job["spec"]["eval_max_items"] == 40
    assert npo_job["spec"]["precheck"]["lm_max_prob_ratio"] == 1.5
    # It stopped by one held-out person and was judged against the other.
    assert npo_job["spec"]["calibration"] is True and npo_job["metrics"]["calibration_people"] == 1
    assert npo_job["metrics"]["evaluation"]["holdout_count"] == 20
    assert "skipped" not in npo_job["metrics"] and npo_job["result_version_id"]
    assert npo_job["metrics"]["evaluation"]["retain_count"] <= 40
    answers = npo_job["metrics"]["forget_answers"]
    assert len(answers) == 20 and all(full_name in a["question"] for a in answers)
    assert all({"answer", "before", "after", "sample_id"} <= set(a) for a in answers)
    assert all(isinstance(a["before"], str) and isinstance(a["after"], str) for a in answers)
    done = wait_request(api, request["id"], {"completed", "failed"}, timeout=420)
    if RECORD:
        _record(api, open_request, npo_job, done)
    assert done["status"] == "completed", (done, worker.log()[-3000:])

    (item,) = done["items"]
    verdict = item["verdict"]
    attempts = verdict["attempts"]
    # The approximate attempt was judged on the causal_lm checks, with the original's
    # figures beside its own; wherever it failed, the exact re-fine-tune replaced it.
    first = attempts[0]
    assert first["method"] == "simnpo"
    names = {c["check"].split(" ")[0] for c in first["checks"]}
    assert names == {"forget_prob", "forget_rouge", "mia_auc", "model_utility"}
    assert all(c["original_value"] is not None for c in first["checks"])
    assert any(not c["original_passed"] for c in first["checks"] if c["kind"] == "forgetting")
    if not first["passed"]:
        assert item["method"] == "retrain" and item["exact"]
        assert attempts[-1]["method"] == "retrain" and verdict["level"] == "exact"
        # The fallback did not score the same original again: it took the attempt's.
        retrain_job = api.get(f"/api/v1/jobs/{attempts[-1]['job_id']}").json()
        assert retrain_job["metrics"]["original_evaluation_job_id"] == first_job
        assert (
            retrain_job["metrics"]["original_evaluation"]
            == (npo_job["metrics"]["original_evaluation"])
        )

    # The certificate: signed, verifies offline with the CLI, names the base and says the
    # base never saw the person.
    certificate = certificate_verifies(api, anon, request["id"])
    (entry,) = certificate["models"]
    assert entry["old_version_id"] == version_id and entry["new_sha256"]
    assert entry["lineage"]["base"]["name"] == "tiny-llama"
    assert "never trained on" in entry["lineage"]["base_statement"]
    assert len(entry["attempts"]) == len(attempts)
    cert_file, key_file = tmp_path / "certificate.json", tmp_path / "expunge.pem"
    cert_file.write_text(json.dumps(certificate))
    key_file.write_text(anon.get("/api/v1/audit/public-key").text)
    result = CliRunner().invoke(
        cli, ["certificate", "verify", str(cert_file), "--public-key", str(key_file)], obj={}
    )
    assert result.exit_code == 0, result.output

    # The purge: no shard of the dataset holds the person's text any more.
    assert full_name not in _shard_texts(app, prod_settings, dataset["id"])
    # The redaction: the ids are commitments now, and the runs' answers about the person
    # are down to their count.
    assert done["scope"]["redacted"] is True
    for attempt in attempts:
        job = api.get(f"/api/v1/jobs/{attempt['job_id']}").json()
        assert person not in json.dumps(job)
        assert full_name not in json.dumps(job)
        assert job["metrics"]["forget_answers"] == {"redacted": True, "count": 20}
