"""POST /deletion-requests/preview: the blast radius before filing, with nothing written."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

V1 = "/api/v1/deletion-requests"


def _key(api: TestClient, role: str) -> dict[str, str]:
    created = api.post("/api/v1/keys", json={"name": f"preview-{role}", "role": role})
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def _counts(api: TestClient) -> tuple[int, int]:
    requests = api.get(V1, params={"limit": 200}).json()["count"]
    newest = api.get("/api/v1/audit/events", params={"limit": 1}).json()["data"]
    return requests, newest[0]["seq"] if newest else -1


def test_preview_shows_the_samples_and_writes_nothing(api, mnist_small) -> None:
    samples = api.get(f"/api/v1/datasets/{mnist_small['id']}/samples", params={"limit": 2}).json()[
        "data"
    ]
    ids = [s["sample_id"] for s in samples]
    before = _counts(api)
    body = {
        "scope": {"sample_ids": ids},
        "legal_basis": "ccpa",
        "received_at": "2026-01-10T00:00:00Z",
    }
    response = api.post(f"{V1}/preview", json=body)
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["scope_kind"] == "sample_ids"
    assert preview["blast_radius"]["samples"] == 2
    assert preview["blast_radius"]["datasets"] == {mnist_small["id"]: 2}
    assert preview["due_at"].startswith("2026-02-24")  # CCPA: 45 days
    assert _counts(api) == before, "a preview files nothing and logs nothing"

    unknown = api.post(
        f"{V1}/preview",
        json={"scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex}"]}, "legal_basis": "other"},
    ).json()
    assert unknown["nothing_to_delete"] and unknown["blast_radius"]["samples"] == 0


def test_preview_checks_its_input_and_role(api, anon) -> None:
    both = {"scope": {"subject_ids": ["a"], "sample_ids": ["b"]}, "legal_basis": "gdpr_art17"}
    assert api.post(f"{V1}/preview", json=both).status_code == 422
    missing = {"scope": {"concept": {"model_id": "mdl_missing", "label": 0}}, "legal_basis": "ccpa"}
    assert api.post(f"{V1}/preview", json=missing).status_code == 404
    scope = {"scope": {"subject_ids": ["a"]}, "legal_basis": "gdpr_art17"}
    engineer = _key(api, "engineer")
    assert anon.post(f"{V1}/preview", json=scope, headers=engineer).status_code == 403
    compliance = _key(api, "compliance")
    assert anon.post(f"{V1}/preview", json=scope, headers=compliance).status_code == 200


def test_preview_of_a_class_checks_the_label_against_the_model(api) -> None:
    arch = {"name": "small_cnn", "num_classes": 10, "width": 8}
    model = api.post(
        "/api/v1/models", json={"name": f"preview-{uuid.uuid4().hex[:8]}", "architecture": arch}
    ).json()
    body = {"scope": {"concept": {"model_id": model["id"], "label": 10}}, "legal_basis": "other"}
    refused = api.post(f"{V1}/preview", json=body)
    assert refused.status_code == 422 and refused.json()["field"] == "scope.concept.label"
    body["scope"]["concept"]["label"] = 3
    preview = api.post(f"{V1}/preview", json=body).json()
    # A class is not personal data: its samples are kept, so none are counted for deletion.
    assert preview["scope_kind"] == "labels" and preview["blast_radius"]["samples"] == 0
    assert preview["blast_radius"]["versions"] == []


def test_a_concept_gives_one_of_label_labels_or_name(api) -> None:
    arch = {"name": "small_cnn", "num_classes": 4, "width": 8}
    model = api.post(
        "/api/v1/models", json={"name": f"concepts-{uuid.uuid4().hex[:8]}", "architecture": arch}
    ).json()

    def concept(**given: object):  # type: ignore[no-untyped-def]
        body = {"scope": {"concept": {"model_id": model["id"], **given}}, "legal_basis": "other"}
        return api.post(f"{V1}/preview", json=body)

    several = concept(labels=[2, 1, 2])
    assert several.status_code == 200 and several.json()["scope_kind"] == "labels"
    both = concept(label=1, labels=[2])
    assert both.status_code == 422 and "exactly one of label, labels or name" in both.text
    assert concept().status_code == 422
    assert concept(labels=[]).status_code == 422
    out_of_range = concept(labels=[0, 4, 5])
    assert out_of_range.status_code == 422
    assert out_of_range.json()["field"] == "scope.concept.labels"
    assert "4, 5 are not a concept" in out_of_range.json()["detail"]
    # No trained version yet, so no dataset whose label names a name could match.
    named = concept(name="striped")
    assert named.status_code == 422 and named.json()["field"] == "scope.concept.name"
    assert "by number instead" in named.json()["detail"]
