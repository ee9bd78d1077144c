"""The strong membership test in a deletion request: a model whose policy asks for 4 shadow
models gets them trained once, on its first request; the next request (on the version the
first one made) reuses them, and both runs' evidence carries the ``lira`` blocks."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest

from core.deletion.shadows import shadow_key
from tests.support.rest import (
    approver_headers,
    finish_requests,
    new_model,
    trained,
    upload_people,
)

pytestmark = pytest.mark.integration
V1 = "/api/v1"
LIRA_KEYS = {"tpr_at_1pct_fpr", "auc", "passed", "k", "forget_count", "reused"}


def _file(api, anon, approver, subject: str) -> dict:  # type: ignore[no-untyped-def]
    """File and approve one subject request; the filed request (with its plan)."""
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
    )
    assert filed.status_code == 201, filed.text
    request = filed.json()
    approved = anon.post(f"{V1}/deletion-requests/{request['id']}/approve", headers=approver)
    assert approved.status_code == 200, approved.text
    return request


def _unlearn_job(api, item: dict) -> dict:  # type: ignore[no-untyped-def]
    """The item's approximate (first) run, which is the one the strong test scores."""
    attempts = [h for h in item["history"] if h.get("event") == "started"]
    job = api.get(f"{V1}/jobs/{attempts[0]['job_id']}").json()
    assert job["state"] == "succeeded" and job["method"] == "finetune", job
    return job


def test_shadows_trained_once_and_reused(api, anon, app, worker) -> None:
    tag = f"lr{uuid.uuid4().hex[:8]}"
    dataset = upload_people(api, tag)
    model = new_model(
        api, {"name": "small_cnn", "num_classes": 4, "width": 8, "input_size": [16, 16]}
    )
    assert (
        api.put(
            f"{V1}/models/{model['id']}/deletion-policy", json={"shadow_models": 1}
        ).status_code
        == 422
    )
    policy = api.put(
        f"{V1}/models/{model['id']}/deletion-policy",
        json={
            "shadow_models": 4,
            "method_params": {"epochs": 1},
            # Lenient checks, and no pricing from the session's past verdicts: both
            # requests plan the approximate method, whatever other tests left behind.
            "thresholds": {"forget_margin": 1, "max_loss_auc": 1, "max_test_drop": 1},
            "price_failures": False,
            "max_cost_fraction": None,
        },
    )
    assert policy.status_code == 200, policy.text
    original = trained(
        api, model["id"], dataset["id"], {"epochs": 3, "lr": 0.05, "batch_size": 16}, worker
    )["result_version_id"]
    approver = approver_headers(api)

    # Both filed before any shadows exist: each plan shows the one-off cost.
    first_request = _file(api, anon, approver, f"{tag}-p1")
    second_request = _file(api, anon, approver, f"{tag}-p2")
    for request in (first_request, second_request):
        [plan] = request["plan"]
        assert plan["method"] == "finetune", plan
        assert plan["shadows"]["k"] == 4 and plan["shadows"]["exists"] is False, plan
        assert plan["shadows"]["one_off_seconds"] > 0  # K/2 trainings' worth, up front
    done = finish_requests(api, [first_request["id"], second_request["id"]], timeout=300)

    [item] = done[first_request["id"]]["items"]
    first = _unlearn_job(api, item)
    lira = first["metrics"]["evaluation"]["lira"]
    assert set(lira) >= LIRA_KEYS and lira["k"] == 4 and lira["reused"] is False, lira
    assert lira["forget_count"] == first["metrics"]["forget_count"] > 0
    assert 0.0 <= lira["tpr_at_1pct_fpr"] <= 1.0 and 0.0 <= lira["auc"] <= 1.0
    before = first["metrics"]["original_evaluation"]["lira"]
    assert set(before) >= LIRA_KEYS and before["forget_count"] == lira["forget_count"]
    record = api.get(f"{V1}/model-versions/{original}").json()["metrics"]["shadow_models"]
    assert record["k"] == 4 and record["job_id"] == first["id"], record

    # The second request ran on the version the first one made and reused the bank.
    [item2] = done[second_request["id"]]["items"]
    assert item2["model_version_id"] == item["result_version_id"] != original
    second = _unlearn_job(api, item2)
    lira2 = second["metrics"]["evaluation"]["lira"]
    assert lira2["reused"] is True and lira2["shadow_version_id"] == original, lira2
    assert lira2["seconds"] == 0.0 and set(lira2) >= LIRA_KEYS
    assert set(second["metrics"]["original_evaluation"]["lira"]) >= LIRA_KEYS
    events = api.get(f"{V1}/jobs/{second['id']}/logs", params={"limit": 1000}).json()["data"]
    logs = " ".join(str(e["data"].get("message", "")) for e in events)
    assert "training 4 shadow models" not in logs and "reusing 4 shadow models" in logs, logs
    again = api.get(f"{V1}/model-versions/{original}").json()["metrics"]["shadow_models"]
    assert again["uses"] == 2 and again["job_id"] == first["id"]  # trained once, by the first

    # Each purge took the deleted samples' columns out of the bank: one object is left,
    # under a new key, holding neither subject's samples (ids and scores gone together).
    store = app.state.store
    assert list(store.list(f"shadows/{original}/")) == [again["key"]] != [shadow_key(original, 4)]
    assert again["forgotten"] > 0 and again["samples"] < record["samples"] + 1
    with np.load(io.BytesIO(store.get_bytes(again["key"])), allow_pickle=False) as bank:
        left = {str(s) for s in bank["sample_ids"]} | {str(s) for s in bank["test_ids"]}
        assert bank["confidences"].shape == (4, len(bank["sample_ids"]))
    gone = {f"{tag}-{n}" for n in range(240) if n % 20 in (1, 2)}
    assert left and not left & gone
