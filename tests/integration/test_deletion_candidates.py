"""A workflow run's new version is a candidate: blocked until its request closes, purged
when it fails verification, usable only once the request completes."""

from __future__ import annotations

import uuid

import pytest

from tests.support.rest import (
    approver_headers,
    new_model,
    trained,
    unfinished_requests,
    upload_people,
    wait_job,
    wait_request,
)

pytestmark = pytest.mark.integration
V1 = "/api/v1"


def test_rejected_candidate_is_purged_and_the_fallback_becomes_active(
    api, anon, app, worker
) -> None:
    tag = f"cd{uuid.uuid4().hex[:8]}"
    ds = upload_people(api, tag)
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    # A whisper of fine-tuning cannot make a well-learnt class vanish, and the policy
    # asks for exactly zero accuracy on it: the approximate candidate must be rejected.
    policy = {
        "class_method": "finetune",
        "class_method_params": {"epochs": 1, "lr": 0.0001},
        "thresholds": {"max_class_accuracy": 0.0},
    }
    put = api.put(f"{V1}/models/{model['id']}/deletion-policy", json=policy)
    assert put.status_code == 200, put.text
    done = trained(api, model["id"], ds["id"], {"epochs": 5, "lr": 0.05, "batch_size": 16})
    version_id = done["result_version_id"]

    filed = api.post(
        f"{V1}/deletion-requests",
        json={
            "scope": {"concept": {"model_id": model["id"], "label": 2}},
            "legal_basis": "other",
        },
    )
    assert filed.status_code == 201, filed.text
    request = filed.json()
    approved = anon.post(
        f"{V1}/deletion-requests/{request['id']}/approve", headers=approver_headers(api)
    )
    assert approved.status_code == 200, approved.text
    first_job = approved.json()["items"][0]["job_id"]

    # The approximate run's version exists, blocked, before the request has looked at it.
    ran = wait_job(api, first_job, {"succeeded", "failed"})
    assert ran["state"] == "succeeded", ran
    candidate = ran["result_version_id"]
    assert api.get(f"{V1}/model-versions/{candidate}").json()["status"] in ("tainted", "purged")
    assert api.get(f"{V1}/model-versions/{candidate}/checkpoint").status_code == 409

    closed = wait_request(api, request["id"], {"completed", "failed"})
    assert closed["status"] == "completed", unfinished_requests(api, [request["id"]])
    [item] = closed["items"]
    assert item["method"] == "retrain" and item["exact"], item
    assert any(h.get("event") == "fallback" for h in item["history"]), item["history"]

    rejected = api.get(f"{V1}/model-versions/{candidate}").json()
    assert rejected["status"] == "purged"
    assert not [k for k in app.state.store.list("models/") if first_job in k]
    timeline = api.get(f"{V1}/deletion-requests/{request['id']}/timeline").json()
    assert "deletion_request.candidate_purged" in {e["action"] for e in timeline}

    final = api.get(f"{V1}/model-versions/{item['result_version_id']}").json()
    assert final["status"] == "active" and final["parent_version_id"] == version_id, final
    download = api.get(f"{V1}/model-versions/{final['id']}/checkpoint")
    assert download.status_code == 200
    assert api.get(f"{V1}/model-versions/{version_id}").json()["status"] == "purged"


def test_failed_request_is_retried_with_the_policy_changed(api, anon, app, worker) -> None:
    """The fallback runs once: a policy whose fallback is as weak as its method ends
    `failed` (versions still blocked, nothing purged, no second round); after the policy
    is fixed, `retry` runs the failed item again and the request completes."""
    tag = f"rt{uuid.uuid4().hex[:8]}"
    ds = upload_people(api, tag)
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    weak = {
        "class_method": "finetune",
        "class_method_params": {"epochs": 1, "lr": 0.0001},
        "fallback": "finetune",
        "thresholds": {"max_class_accuracy": 0.0},
    }
    assert api.put(f"{V1}/models/{model['id']}/deletion-policy", json=weak).status_code == 200
    version_id = trained(api, model["id"], ds["id"], {"epochs": 5, "lr": 0.05, "batch_size": 16})[
        "result_version_id"
    ]
    request = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"concept": {"model_id": model["id"], "label": 1}}, "legal_basis": "other"},
    ).json()
    assert api.post(f"{V1}/deletion-requests/{request['id']}/retry").status_code == 409
    approver = approver_headers(api)
    approved = anon.post(f"{V1}/deletion-requests/{request['id']}/approve", headers=approver)
    assert approved.status_code == 200, approved.text

    failed = wait_request(api, request["id"], {"completed", "failed"})
    assert failed["status"] == "failed", unfinished_requests(api, [request["id"]])
    [item] = failed["items"]
    events = [h["event"] for h in item["history"]]
    assert events.count("fallback") == 1 and events[-1] == "failed", events
    assert version_id in failed["reason"]
    assert api.get(f"{V1}/model-versions/{version_id}").json()["status"] == "tainted"
    assert api.get(f"{V1}/model-versions/{version_id}/checkpoint").status_code == 409

    fixed = api.put(
        f"{V1}/models/{model['id']}/deletion-policy", json={**weak, "fallback": "retrain"}
    )
    assert fixed.status_code == 200
    retried = anon.post(f"{V1}/deletion-requests/{request['id']}/retry", headers=approver)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "unlearning" and retried.json()["reason"] is None
    closed = wait_request(api, request["id"], {"completed", "failed"})
    assert closed["status"] == "completed", unfinished_requests(api, [request["id"]])
    [item] = closed["items"]
    # Every attempt stays on the record, across the failure and the retry.
    attempts = item["verdict"]["attempts"]
    assert [a["attempt"] for a in attempts] == list(range(1, item["attempt"] + 1)), attempts
    assert [a["passed"] for a in attempts] == [False] * (len(attempts) - 1) + [True]
    assert attempts[-1]["method"] == "retrain" and attempts[0]["method"] == "finetune"
    assert all(a["original_evaluation"] for a in attempts[:2])
    certified = api.get(f"{V1}/deletion-requests/{request['id']}/certificate").json()
    listed = certified["models"][0]["attempts"]
    assert [(a["job_id"], a["passed"]) for a in listed] == [
        (a["job_id"], a["passed"]) for a in attempts
    ]
    assert item["method"] == "retrain" and item["exact"] and item["attempt"] == 4, item
    assert api.get(f"{V1}/model-versions/{version_id}").json()["status"] == "purged"
    timeline = api.get(f"{V1}/deletion-requests/{request['id']}/timeline").json()
    actions = [e["action"] for e in timeline]
    assert actions.index("deletion_request.failed") < actions.index("deletion_request.retried")
    assert api.post(f"{V1}/deletion-requests/{request['id']}/retry").status_code == 409
