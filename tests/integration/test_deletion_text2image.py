"""A deletion request on a text2image model, end to end with a real worker.

A label request (two classes of the model, at once) is erased by the policy's default for the family
(UCE on the class's captions) and judged like a ddpm erasure; the new version no longer
holds the class's samples in its lineage. A subject request on that version is then
retrained (exact). Both certificates verify offline. tiny8 and
a handful of steps, on uploaded data so no other test's models are touched."""

from __future__ import annotations

import uuid

import pytest

from tests.support.diffusion import LENIENT, TINY_T2I, TINY_TRAIN, judged_attempt
from tests.support.rest import (
    V1,
    approver_headers,
    certificate_verifies,
    finish_request,
    trained,
    upload_people,
)

pytestmark = pytest.mark.integration
def test_label_request_on_a_text2image(api, anon, app, worker) -> None:
    tag = f"ti{uuid.uuid4().hex[:8]}"
    ds = upload_people(api, tag)
    model = api.post(f"{V1}/models", json={"name": f"t2i-{tag}", "architecture": TINY_T2I}).json()
    defaults = api.get(f"{V1}/models/{model['id']}/deletion-policy").json()
    assert defaults["class_method"] == "uce" and defaults["method"] == "retrain"
    assert defaults["fallback"] == "retrain"
    policy = LENIENT
    put = api.put(f"{V1}/models/{model['id']}/deletion-policy", json=policy)
    assert put.status_code == 200 and put.json()["class_method"] == "uce", put.text
    original = trained(api, model["id"], ds["id"], TINY_TRAIN, worker)["result_version_id"]
    before = api.get(f"{V1}/model-versions/{original}/lineage").json()["training_set"]

    filed = api.post(
        f"{V1}/deletion-requests",
        json={
            "scope": {"concept": {"model_id": model["id"], "labels": [3, 1]}},
            "legal_basis": "other",
        },
    ).json()
    assert filed["status"] == "awaiting_approval", filed
    [plan] = filed["plan"]
    assert plan["method"] == "uce" and not plan["exact"] and plan["fallback"] == "retrain"
    approve = anon.post(
        f"{V1}/deletion-requests/{filed['id']}/approve", headers=approver_headers(api)
    )
    assert approve.status_code == 200, approve.text
    done = finish_request(api, filed["id"])
    assert done["status"] == "completed", (done, worker.log()[-3000:])
    [item] = done["items"]
    attempt = judged_attempt(item, "uce")
    assert attempt["evaluation"]["forget_labels"] == [1, 3]
    assert attempt["evaluation"]["samples_per_class"] == 4
    unlearn = api.get(f"{V1}/jobs/{attempt['job_id']}").json()
    assert unlearn["metrics"]["judge"]["kind"] == "trained"
    prompts = unlearn["metrics"]["concept"]["prompts"]  # each class's one caption, at once
    assert len(prompts) == 2 and all(p.startswith("a photo of ") for p in prompts)
    assert unlearn["metrics"]["concept"]["anchor"] == ""
    erased = api.get(f"{V1}/model-versions/{item['result_version_id']}").json()
    # The class's samples left the lineage with the erasure.
    after = api.get(f"{V1}/model-versions/{erased['id']}/lineage").json()["training_set"]
    assert 0 < after["count"] < before["count"]
    assert api.get(f"{V1}/model-versions/{original}").json()["status"] == "purged"
    certificate = certificate_verifies(api, anon, filed["id"])
    assert certificate["models"][0]["new_sha256"] == erased["sha256"]

    # A subject (images of label 2) the erased version still trained on: retrained.
    subject = f"{tag}-p2"
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [subject]}, "legal_basis": "gdpr_art17"},
    ).json()
    assert filed["blast_radius"]["versions"] == [erased["id"]], filed
    [plan] = filed["plan"]
    assert plan["method"] == "retrain" and plan["exact"]
    approve = anon.post(
        f"{V1}/deletion-requests/{filed['id']}/approve", headers=approver_headers(api)
    )
    assert approve.status_code == 200, approve.text
    done = finish_request(api, filed["id"])
    assert done["status"] == "completed", (done, worker.log()[-3000:])
    [item] = done["items"]
    assert item["method"] == "retrain" and item["verdict"]["exact"]
    certificate_verifies(api, anon, filed["id"])
    assert api.get(f"{V1}/model-versions/{erased['id']}").json()["status"] == "purged"
    assert api.get(f"{V1}/audit/verify").json()["ok"]
