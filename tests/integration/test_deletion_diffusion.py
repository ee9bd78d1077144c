"""Deletion requests on a diffusion (ddpm) model, end to end with a real worker.

A concept request (a class of the model) is erased by the policy's diffusion method (ESD)
and verified on two judges' forget rate and retained accuracy at two sampler settings
(the exact fallback runs where that verdict cannot certify it); a subject request on the
resulting version is retrained without the subject (exact). Both complete with a
certificate that verifies offline; the old checkpoints, the subject's bytes and the
judges trained on them are gone. Uploaded data with subject ids of its own, so no other
test's models are touched; tiny8 and a handful of steps."""

from __future__ import annotations

import uuid

import pytest

from tests.support.diffusion import LENIENT, TINY8, TINY_TRAIN, judged_attempt
from tests.support.rest import (
    approver_headers,
    certificate_verifies,
    finish_request,
    trained,
    upload_people,
)

pytestmark = pytest.mark.integration
V1 = "/api/v1"
def test_concept_then_subject_on_a_ddpm(api, anon, app, worker) -> None:
    tag = f"dd{uuid.uuid4().hex[:8]}"
    ds = upload_people(api, tag)
    model = api.post(f"{V1}/models", json={"name": f"ddpm-{tag}", "architecture": TINY8}).json()
    defaults = api.get(f"{V1}/models/{model['id']}/deletion-policy").json()
    assert defaults["class_method"] == "esd" and defaults["method"] == "retrain"
    assert defaults["thresholds"]["max_forget_rate"] == 0.02
    bad = api.put(
        f"{V1}/models/{model['id']}/deletion-policy", json={"judge": {"samples_per_class": 0}}
    )
    assert bad.status_code == 422, bad.text
    policy = {
        "class_method_params": {"steps": 3, "batch_size": 4, "trajectories": 1, "ddim_steps": 2},
        **LENIENT,
    }
    put = api.put(f"{V1}/models/{model['id']}/deletion-policy", json=policy)
    assert put.status_code == 200 and put.json()["class_method"] == "esd", put.text
    original = trained(api, model["id"], ds["id"], TINY_TRAIN, worker)["result_version_id"]
    approver = approver_headers(api)

    # 1. A concept: class 1 of this model, named as its dataset names it, erased with
    # ESD and judged.
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"concept": {"model_id": model["id"], "name": "1"}}, "legal_basis": "other"},
    ).json()
    assert filed["status"] == "awaiting_approval", filed
    assert filed["scope"]["labels"] == [1] and filed["scope"]["concept_name"] == "1", filed
    [plan] = filed["plan"]
    assert plan["method"] == "esd" and not plan["exact"] and plan["fallback"] == "retrain"
    assert (
        anon.post(f"{V1}/deletion-requests/{filed['id']}/approve", headers=approver).status_code
        == 200
    )
    done = finish_request(api, filed["id"])
    assert done["status"] == "completed", (done, worker.log()[-3000:])
    [item] = done["items"]
    attempt = judged_attempt(item, "esd")
    assert attempt["evaluation"]["samples_per_class"] == 4
    erased = item["result_version_id"]
    assert api.get(f"{V1}/model-versions/{original}").json()["status"] == "purged"
    unlearn = api.get(f"{V1}/jobs/{attempt['job_id']}").json()
    assert unlearn["metrics"]["judge"]["kind"] == "trained"
    assert unlearn["metrics"]["judge"]["heldout_accuracy"] is not None
    assert [j["architecture"] for j in unlearn["metrics"]["judges"]] == ["small_cnn", "mlp"]
    certificate = certificate_verifies(api, anon, filed["id"])
    assert (
        certificate["models"][0]["new_sha256"]
        == api.get(f"{V1}/model-versions/{erased}").json()["sha256"]
    )
    store = app.state.store
    assert list(store.list(f"judges/{ds['id']}"))  # the judge is cached for reuse

    # 2. A subject whose images (label 2) the erased version still trained on: retrain.
    subject = f"{tag}-p2"
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
    ).json()
    assert filed["blast_radius"]["versions"] == [erased], filed
    [plan] = filed["plan"]
    assert plan["method"] == "retrain" and plan["exact"]
    assert (
        anon.post(f"{V1}/deletion-requests/{filed['id']}/approve", headers=approver).status_code
        == 200
    )
    done = finish_request(api, filed["id"])
    assert done["status"] == "completed", (done, worker.log()[-3000:])
    [item] = done["items"]
    assert item["method"] == "retrain" and item["verdict"]["exact"]
    certificate = certificate_verifies(api, anon, filed["id"])
    assert subject not in str(certificate)
    assert api.get(f"{V1}/model-versions/{erased}").json()["status"] == "purged"
    gone = api.get(f"{V1}/datasets/{ds['id']}/samples", params={"subject_id": subject}).json()
    assert gone["data"] == []
    # Judges trained on the deleted images went with them.
    assert not list(store.list(f"judges/{ds['id']}"))
    assert api.get(f"{V1}/audit/verify").json()["ok"]
