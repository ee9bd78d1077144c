"""Versions of unknown lineage (uploaded checkpoints, no recorded training samples) are
named wherever a request is shown: the preview's blast radius with what the requester
should know, and the certificate, even when nothing else was found."""

from __future__ import annotations

import uuid

from tests.support.rest import MNIST_CNN, digit_recognizer_weights

V1 = "/api/v1"


def test_uploaded_versions_are_named_with_their_lineage_note(api) -> None:
    model = api.post(
        f"{V1}/models", json={"name": f"uploaded-{uuid.uuid4().hex[:8]}", "architecture": MNIST_CNN}
    ).json()
    with digit_recognizer_weights().open("rb") as fh:
        uploaded = api.post(
            f"{V1}/models/{model['id']}/versions",
            files={"checkpoint": ("handwriting_model.pth", fh)},
        )
    assert uploaded.status_code == 201, uploaded.text
    version = uploaded.json()
    body = {"scope": {"subject_ids": [f"nobody-{uuid.uuid4().hex}"]}, "legal_basis": "other"}

    preview = api.post(f"{V1}/deletion-requests/preview", json=body).json()
    radius = preview["blast_radius"]
    assert version["id"] in radius["unverifiable_versions"]
    assert radius["unverifiable_note"].startswith("lineage unknown: we cannot tell whether")

    filed = api.post(f"{V1}/deletion-requests", json=body).json()
    assert filed["status"] == "completed", filed
    certificate = api.get(f"{V1}/deletion-requests/{filed['id']}/certificate").json()
    assert certificate["outcome"] == "nothing_to_delete"
    [named] = [u for u in certificate["unknown_lineage"] if u["version_id"] == version["id"]]
    assert named["sha256"] == version["sha256"] and named["status"] == "active"
    assert named["note"] == radius["unverifiable_note"]
    page = api.get(
        f"{V1}/deletion-requests/{filed['id']}/certificate", params={"format": "html"}
    ).text
    assert "Versions of unknown lineage" in page and version["id"] in page
