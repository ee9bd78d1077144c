"""Two requests on one version, no batch window: the runs are serial, the second continues
from the first one's result, and no live version keeps either subject.

Run side by side from the same version, each new version would be derived from a parent
that still held the other request's subject, and both requests would be certified while
each subject lived on in the other's replacement.
"""

from __future__ import annotations

import uuid

import pytest

from core.deletion.certificate import CONTEXT
from core.signing import verify_document
from tests.support.rest import (
    approver_headers,
    finish_requests,
    new_model,
    people_archive,
    wait_job,
)

pytestmark = pytest.mark.integration
V1 = "/api/v1"


def test_second_request_continues_from_the_first_ones_result(api, anon, worker) -> None:
    tag = f"sr{uuid.uuid4().hex[:8]}"
    uploaded = api.post(
        f"{V1}/datasets/upload",
        files={"file": ("people.zip", people_archive(tag), "application/zip")},
        data={"name": f"serial-{tag}"},
    )
    assert uploaded.status_code == 201, uploaded.text
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    job = api.post(
        f"{V1}/jobs",
        json={
            "kind": "train",
            "model_id": model["id"],
            "dataset_id": uploaded.json()["id"],
            "params": {"epochs": 5, "lr": 0.05, "batch_size": 16},
        },
    ).json()
    trained = wait_job(api, job["id"], {"succeeded", "failed"})
    assert trained["state"] == "succeeded", trained
    original = trained["result_version_id"]

    approver = approver_headers(api)
    ids = []
    for subject in (f"{tag}-p1", f"{tag}-p2"):
        filed = api.post(
            f"{V1}/deletion-requests",
            json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
        ).json()
        assert original in filed["blast_radius"]["versions"], filed
        ids.append(filed["id"])
    first = anon.post(f"{V1}/deletion-requests/{ids[0]}/approve", headers=approver).json()
    second = anon.post(f"{V1}/deletion-requests/{ids[1]}/approve", headers=approver).json()
    assert first["items"][0]["state"] == "unlearning"
    assert second["items"][0]["state"] == "waiting" and second["items"][0]["job_id"] is None

    done = finish_requests(api, ids, timeout=200)
    assert [done[i]["status"] for i in ids] == ["completed", "completed"], done

    [a], [b] = done[ids[0]]["items"], done[ids[1]]["items"]
    assert a["model_version_id"] == original
    # The second request ran on the first one's result, not on the original.
    assert b["model_version_id"] == a["result_version_id"]
    assert any(h["event"] == "retargeted" for h in b["history"])
    versions = {v["id"]: v for v in api.get(f"{V1}/models/{model['id']}/versions").json()["data"]}
    assert versions[original]["status"] == "purged"
    assert versions[a["result_version_id"]]["status"] == "purged"
    final = versions[b["result_version_id"]]
    assert final["status"] == "active" and final["parent_version_id"] == a["result_version_id"]
    live = [v for v in versions.values() if v["status"] in ("active", "tainted")]
    assert [v["id"] for v in live] == [final["id"]]

    public_key = anon.get(f"{V1}/audit/public-key").text
    for request_id, item in zip(ids, (a, b), strict=True):
        certificate = api.get(f"{V1}/deletion-requests/{request_id}/certificate").json()
        ok, why = verify_document(certificate, public_key, CONTEXT)
        assert ok, why
        assert certificate["models"][0]["old_version_id"] == item["model_version_id"]
