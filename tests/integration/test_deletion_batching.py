"""Three requests on one version inside the model's batch window: one unlearning run, one
new version, three certificates that each point at that run and verify offline.

The data set is uploaded with subject ids of its own, so these requests touch no other
test's models (the built-in data sets share their subject ids between imports)."""

from __future__ import annotations

import uuid

import pytest

from core.deletion.certificate import CONTEXT
from core.signing import verify_document
from tests.support.rest import (
    approver_headers,
    finish_requests,
    new_model,
    trained,
    upload_people,
)

pytestmark = pytest.mark.integration
V1 = "/api/v1"


def test_three_requests_one_run_three_certificates(api, anon, worker) -> None:
    tag = f"bt{uuid.uuid4().hex[:8]}"
    ds = upload_people(api, tag)
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    policy = api.put(f"{V1}/models/{model['id']}/deletion-policy", json={"batch_window_seconds": 4})
    assert policy.status_code == 200 and policy.json()["batch_window_seconds"] == 4
    fitted = trained(api, model["id"], ds["id"], {"epochs": 5, "lr": 0.05, "batch_size": 16})
    version_id = fitted["result_version_id"]
    subjects = [f"{tag}-p1", f"{tag}-p2", f"{tag}-p3"]

    approver = approver_headers(api)
    ids = []
    for subject in subjects:
        filed = api.post(
            f"{V1}/deletion-requests",
            json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
        ).json()
        assert (
            filed["status"] == "awaiting_approval"
            and version_id in filed["blast_radius"]["versions"]
        ), filed
        ids.append(filed["id"])
    for request_id in ids:
        approved = anon.post(f"{V1}/deletion-requests/{request_id}/approve", headers=approver)
        assert approved.status_code == 200, approved.text
        [item] = approved.json()["items"]
        assert item["state"] == "waiting" and item["batch_until"] and item["job_id"] is None

    done = finish_requests(api, ids, timeout=200)
    assert {r["status"] for r in done.values()} == {"completed"}, done

    items = [r["items"][0] for r in done.values()]
    job_ids = {i["job_id"] for i in items}
    new_versions = {i["result_version_id"] for i in items}
    assert len(job_ids) == 1 and len(new_versions) == 1, items
    # Every run the items went through (the approximate one, and any fallback) was shared.
    started = [[h["job_id"] for h in i["history"] if h["event"] == "started"] for i in items]
    assert started[0] == started[1] == started[2]
    assert all(h["batch_size"] == 3 for i in items for h in i["history"] if h["event"] == "started")
    [new_version] = new_versions
    versions = api.get(f"{V1}/models/{model['id']}/versions").json()["data"]
    unlearned = [v for v in versions if v["parent_version_id"] == version_id]
    # A first attempt that failed verification leaves only a purged candidate behind: the
    # one version made from the original that anyone can use is the batch's result.
    assert [v["id"] for v in unlearned if v["status"] != "purged"] == [new_version]
    assert all(v["status"] == "purged" for v in unlearned if v["id"] != new_version)

    public_key = anon.get(f"{V1}/audit/public-key").text
    [run] = job_ids
    for request_id in ids:
        certificate = api.get(f"{V1}/deletion-requests/{request_id}/certificate").json()
        ok, why = verify_document(certificate, public_key, CONTEXT)
        assert ok, why
        [entry] = certificate["models"]
        assert entry["job_id"] == run and entry["batched_requests"] == 3
        assert entry["new_version_id"] == new_version and entry["old_version_id"] == version_id
    assert api.get(f"{V1}/audit/verify").json()["ok"]
