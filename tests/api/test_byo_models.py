"""Bring-your-own classifiers over REST: names checked at creation, the user's own
torchvision/timm state dict uploaded as a version, a misfit refused naming the keys."""

from __future__ import annotations

import io
import uuid

import torch

from contracts.classifier import ArchitectureConfig
from workers.engine.nets import build_network

TV = {"name": "torchvision", "model": "resnet18", "num_classes": 5, "input_size": [32, 32]}


def _model(api, arch: dict) -> dict:
    response = api.post(
        "/api/v1/models", json={"name": f"byo-{uuid.uuid4().hex[:6]}", "architecture": arch}
    )
    assert response.status_code == 201, response.text
    return response.json()


def _native_state(arch: dict) -> dict[str, torch.Tensor]:
    """What a user saves from their own torchvision/timm model: the library's key names."""
    torch.set_num_threads(1)
    net = build_network(ArchitectureConfig.model_validate({"in_channels": 3, **arch}))
    return {k.removeprefix("net."): v for k, v in net.state_dict().items()}


def _upload(api, model_id: str, state: dict[str, torch.Tensor]):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return api.post(
        f"/api/v1/models/{model_id}/versions",
        files={"checkpoint": ("mine.pt", buffer.getvalue())},
    )


def test_library_names_are_checked_at_creation(api) -> None:
    for arch, words in (
        ({"name": "timm", "model": "resnet18dd", "num_classes": 3}, "did you mean"),
        ({"name": "torchvision", "num_classes": 3}, "needs a model name"),
    ):
        response = api.post("/api/v1/models", json={"name": "byo-bad", "architecture": arch})
        assert response.status_code == 422, response.text
        assert words in response.json()["message"], response.json()
    created = _model(api, {**TV, "in_channels": 3})
    assert created["architecture"]["model"] == "resnet18"


def test_users_own_torchvision_weights_upload_and_misfits_are_422(api) -> None:
    model = _model(api, {**TV, "in_channels": 3})
    uploaded = _upload(api, model["id"], _native_state({**TV}))
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["source"] == "upload"

    wrong = _upload(api, model["id"], _native_state({**TV, "num_classes": 7}))
    assert wrong.status_code == 422, wrong.text
    detail = wrong.json()["detail"]
    assert "net.fc.weight" in detail and "[7, 512]" in detail, detail
