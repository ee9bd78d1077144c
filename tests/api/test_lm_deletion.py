"""Deletion requests that meet language models over REST (no worker needed): an uploaded
causal_lm version without lineage is named, never changed, and makes the outcome
``erased_where_known`` while the person's text still leaves the dataset; a person found
nowhere is answered ``nothing_to_delete`` with a certificate; an LM deletion policy that
names a method or threshold the family cannot use is a 422 naming the field."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.db import fake_version
from tests.support.lm_people import upload_people
from tests.support.rest import advance_request, key_headers

V1 = "/api/v1"


def _lm_model(api: Any) -> dict[str, Any]:
    created = api.post(
        f"{V1}/models",
        json={
            "name": f"lm-{uuid.uuid4().hex[:8]}",
            "family": "causal_lm",
            "architecture": {"base": "tiny-llama"},
        },
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_an_uploaded_lm_without_lineage_is_named_and_left_alone(
    api: Any, anon: Any, prod_settings: Any
) -> None:
    tag = f"lmu{uuid.uuid4().hex[:6]}"
    dataset = upload_people(api, tag, people=2, held_out=1, world_facts=2)
    model = _lm_model(api)
    version_id = fake_version(prod_settings, model["id"])  # uploaded: no training samples
    person = f"{tag}-person-0001"

    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [person]}, "legal_basis": "gdpr_art17"},
    )
    assert filed.status_code == 201, filed.text
    request = filed.json()
    radius = request["blast_radius"]
    assert radius["datasets"] == {dataset["id"]: 21} and radius["versions"] == []
    assert version_id in radius["unverifiable_versions"]
    assert request["plan"] == []  # nothing Expunge can tell was trained on the person

    approved = anon.post(
        f"{V1}/deletion-requests/{request['id']}/approve", headers=key_headers(api, "compliance")
    )
    assert approved.status_code == 200, approved.text
    done = advance_request(api, request["id"])
    assert done["status"] == "completed", done
    certificate = api.get(f"{V1}/deletion-requests/{request['id']}/certificate").json()
    assert certificate["outcome"] == "erased_where_known" and certificate["models"] == []
    [named] = [u for u in certificate["unknown_lineage"] if u["version_id"] == version_id]
    assert named["model_id"] == model["id"] and named["status"] == "active"
    # The person's records still left the dataset: a new version without them.
    [purged] = certificate["datasets"]
    assert purged["dataset_id"] == dataset["id"] and purged["version"] == 2
    left = api.get(f"{V1}/datasets/{dataset['id']}/samples", params={"limit": 200}).json()
    assert all(s["subject_id"] != person for s in left["data"])


def test_a_person_found_nowhere_is_answered_with_a_certificate(api: Any) -> None:
    filed = api.post(
        f"{V1}/deletion-requests",
        json={"scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex}"]}, "legal_basis": "ccpa"},
    )
    # Not a 4xx: the person asked and is answered, with a signed "nothing to delete".
    assert filed.status_code == 201, filed.text
    assert filed.json()["status"] == "completed"
    certificate = api.get(f"{V1}/deletion-requests/{filed.json()['id']}/certificate").json()
    assert certificate["outcome"] == "nothing_to_delete"


def test_an_lm_policy_names_only_what_the_family_can_use(api: Any) -> None:
    model = _lm_model(api)
    path = f"{V1}/models/{model['id']}/deletion-policy"
    policy = api.get(path).json()
    assert policy["method"] == "simnpo" and policy["fallback"] == "retrain"
    assert policy["method_params"] == {"lr": 1e-4, "stop_at_holdout": True}
    assert policy["thresholds"]["lm_max_mia_auc"] == 0.75
    compliance = key_headers(api, "compliance")

    classifier_method = api.put(path, json={"method": "boundary_shrink"}, headers=compliance)
    assert classifier_method.status_code == 422, classifier_method.text
    assert "boundary_shrink" in classifier_method.text

    bad_bound = api.put(path, json={"thresholds": {"lm_max_mia_auc": 0.4}}, headers=compliance)
    assert bad_bound.status_code == 422 and "lm_max_mia_auc" in bad_bound.text

    chosen = api.put(
        path,
        json={"method": "simnpo", "thresholds": {"lm_rouge_margin": 0.05}},
        headers=compliance,
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["method"] == "simnpo" and chosen.json()["fallback"] == "retrain"
    assert chosen.json()["thresholds"]["lm_rouge_margin"] == 0.05
