"""Tuning a model's deletion policy on the model itself, through REST with a real worker:
a pseudo-forget set of its own training samples, a retrain reference, each candidate
scored, and the winner stored on the policy and recorded in the audit log."""

from __future__ import annotations

import pytest

from tests.support.rest import new_model, trained, wait_job

pytestmark = pytest.mark.integration
V1 = "/api/v1"
# Checks a tiny, briefly trained classifier passes whatever a candidate does, so the
# test is about the search and where its winner goes, not about this network's numbers.
LENIENT = {"forget_margin": 1.0, "max_loss_auc": 1.0, "max_test_drop": 1.0}


def test_a_tuning_job_stores_its_winner_on_the_policy(api, worker, mnist_small) -> None:
    model = new_model(api)
    done = trained(api, model["id"], mnist_small["id"], {"epochs": 3, "batch_size": 32})
    put = api.put(
        f"{V1}/models/{model['id']}/deletion-policy",
        json={"method_params": {"device": "cpu"}, "thresholds": LENIENT},
    )
    assert put.status_code == 200, put.text

    started = api.post(
        f"{V1}/models/{model['id']}/tune",
        json={"grid": {"lr": [0.001, 0.05]}, "pseudo_forget_fraction": 0.05, "seed": 3},
    )
    assert started.status_code == 201, started.text
    job = started.json()
    assert job["kind"] == "tune" and job["method"] == "finetune"
    assert job["model_version_id"] == done["result_version_id"]
    # The pseudo-forget set is a share of the samples the version was trained on.
    assert job["spec"]["forget_count"] == round(0.05 * job["spec"]["trained_count"])
    assert job["spec"]["candidates"] == [{"lr": 0.001}, {"lr": 0.05}]

    finished = wait_job(api, job["id"], {"succeeded", "failed"}, timeout=400)
    assert finished["state"] == "succeeded", finished
    report = finished["metrics"]
    scored = report["candidates"]
    assert [c["params"] for c in scored] == [{"lr": 0.001}, {"lr": 0.05}]
    assert all(c["passed"] for c in scored), scored
    best = min(scored, key=lambda c: (c["avg_gap"], c["cost_fraction"]))
    assert report["winner"]["params"] == best["params"] and report["applied"] is True
    assert set(report["reference"]) >= {"UA", "RA", "TA", "MIA"}
    assert all(0 < c["cost_fraction"] <= 0.5 for c in scored)

    policy = api.get(f"{V1}/models/{model['id']}/deletion-policy").json()
    # The winner, with the device the policy already named; thresholds left alone.
    assert policy["method"] == "finetune"
    assert policy["method_params"] == {**best["params"], "device": "cpu"}
    assert policy["thresholds"]["forget_margin"] == 1.0

    events = api.get(
        f"{V1}/audit/events",
        params={"action": "deletion_policy.tuned", "entity_id": model["id"]},
    ).json()["data"]
    assert len(events) == 1
    payload = events[0]["payload"]
    assert payload["job_id"] == job["id"] and payload["winner"] == best["params"]
    assert payload["applied"] is True and len(payload["candidates"]) == 2


def test_with_shadow_models_candidates_face_the_strong_test(api, worker, mnist_small) -> None:
    model = new_model(api)
    trained(api, model["id"], mnist_small["id"], {"epochs": 3, "batch_size": 32})
    policy = {"thresholds": LENIENT, "shadow_models": 2}
    assert api.put(f"{V1}/models/{model['id']}/deletion-policy", json=policy).status_code == 200
    job = api.post(
        f"{V1}/models/{model['id']}/tune",
        json={"grid": {"lr": [0.01]}, "pseudo_forget_fraction": 0.1, "apply": False},
    ).json()
    finished = wait_job(api, job["id"], {"succeeded", "failed"}, timeout=400)
    assert finished["state"] == "succeeded", finished
    (candidate,) = finished["metrics"]["candidates"]
    assert "lira" in candidate, candidate  # TPR at 1 % FPR and whether it passed
    assert 0.0 <= candidate["lira"]["tpr_at_1pct_fpr"] <= 1.0
    # apply=false: reported, not stored; the policy keeps its (empty) method params.
    assert finished["metrics"]["applied"] is False
    kept = api.get(f"{V1}/models/{model['id']}/deletion-policy").json()
    assert kept["method_params"] == {}


def test_bad_tuning_requests_are_refused_with_the_reason(api, mnist_small) -> None:
    model = new_model(api)
    url = f"{V1}/models/{model['id']}/tune"
    # No version yet: nothing to tune on.
    none_yet = api.post(url, json={})
    assert none_yet.status_code == 409 and "no active version" in none_yet.text
    assert api.post(f"{V1}/models/mdl_nope/tune", json={}).status_code == 404
    exact = api.post(url, json={"method": "retrain"})
    assert exact.status_code == 422 and "nothing to tune" in exact.text
    typo = api.post(url, json={"grid": {"lrr": [0.1]}})
    assert typo.status_code == 422 and "lrr" in typo.text
    big = api.post(url, json={"grid": {"lr": [0.1] * 5, "budget_fraction": [0.1] * 3}})
    assert big.status_code == 422 and "at most 12" in big.text
