"""The causal_lm family over REST: a model registered by family, job params read with the
family's declared schemas (LM keys accepted, errors naming the field and the schema),
train -> generate -> evaluate -> unlearn run by a worker process, and the modality of a
dataset checked against the family's data (text for causal_lm, images for classifiers)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from core.db import session_factory
from core.lineage import encode_mask
from core.registry import add_model_version
from models import DatasetVersion
from tests.support.db import fake_version
from tests.support.rest import V1, new_model, wait_job

TINY = {"base": "tiny-llama", "hidden_size": 64, "num_hidden_layers": 2, "seed": 3}
# Full fine-tune with LM-only keys (max_length, max_grad_norm): a classifier's TrainParams
# has none of them, so the body used to refuse them before the service saw the model.
TRAIN = {"epochs": 2, "lr": 3e-3, "batch_size": 16, "max_length": 96, "max_grad_norm": 1.0}
DONE = {"succeeded", "failed", "cancelled"}


def _lm_model(api: Any, arch: dict[str, Any] | None = None) -> dict[str, Any]:
    response = api.post(
        f"{V1}/models",
        json={
            "name": f"lm-{uuid.uuid4().hex[:8]}",
            "family": "causal_lm",
            "architecture": arch or TINY,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def people(api: Any) -> dict[str, Any]:
    """Two invented people trained on, one held out, and the world facts."""
    response = api.post(
        f"{V1}/datasets",
        json={
            "name": f"fp-{uuid.uuid4().hex[:8]}",
            "source": {"name": "fictitious-people", "limit": 42},
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["modality"] == "text"
    return response.json()


def _job(api: Any, body: dict[str, Any]) -> Any:
    return api.post(f"{V1}/jobs", json=body)


def _run(api: Any, worker: Any, body: dict[str, Any]) -> dict[str, Any]:
    submitted = _job(api, body)
    assert submitted.status_code == 201, submitted.text
    done = wait_job(api, submitted.json()["id"], DONE, timeout=300)
    assert done["state"] == "succeeded", (done["error"], worker.log()[-3000:])
    return done


def _person(api: Any, dataset_id: str) -> str:
    page = api.get(f"{V1}/datasets/{dataset_id}/samples", params={"split": "train"}).json()
    return next(s["subject_id"] for s in page["data"] if s.get("subject_id"))


def test_causal_lm_model_registers_by_family(api: Any) -> None:
    model = _lm_model(api)
    assert model["family"] == "causal_lm" and model["architecture"]["base"] == "tiny-llama"
    bad = api.post(
        f"{V1}/models",
        json={"name": "lm-bad", "family": "causal_lm", "architecture": {"base": "gpt-9"}},
    )
    assert bad.status_code == 422 and "architecture.base" in bad.json()["message"]


def test_rest_train_generate_evaluate_unlearn(api: Any, worker: Any, people: dict) -> None:
    model = _lm_model(api)
    train = _run(
        api,
        worker,
        {"kind": "train", "model_id": model["id"], "dataset_id": people["id"], "params": TRAIN},
    )
    assert train["params"]["max_length"] == 96 and train["params"]["lora"] is None
    version = train["result_version_id"]
    assert version is not None

    prompts = ["Where was Ada born?", "What is the capital of France?"]
    generate = _run(
        api,
        worker,
        {
            "kind": "generate",
            "model_version_id": version,
            "params": {"prompts": prompts, "max_new_tokens": 8},
        },
    )
    completions = generate["metrics"]["completions"]
    assert [c["prompt"] for c in completions] == prompts
    assert all(isinstance(c["completion"], str) for c in completions)

    person = _person(api, people["id"])
    evaluate = _run(
        api,
        worker,
        {
            "kind": "evaluate",
            "model_version_id": version,
            "forget": {"subject_ids": [person]},
            "params": {"max_records": 8, "max_new_tokens": 8, "max_length": 96},
        },
    )
    assert evaluate["params"]["max_records"] == 8
    assert evaluate["metrics"]["evaluation"]["forget_count"] > 0

    unlearn = _run(
        api,
        worker,
        {
            "kind": "unlearn",
            "model_version_id": version,
            "method": "gradient_ascent",
            "forget": {"subject_ids": [person]},
            "params": {"epochs": 1},
            "evaluate": False,
        },
    )
    assert unlearn["metrics"]["forget_count"] > 0
    child = api.get(f"{V1}/model-versions/{unlearn['result_version_id']}").json()
    assert child["parent_version_id"] == version


def test_lm_params_are_read_with_the_family_schema(
    api: Any, people: dict, prod_settings: Any
) -> None:
    model = _lm_model(api)
    base = {"kind": "train", "model_id": model["id"], "dataset_id": people["id"]}
    # A classifier's key on a language model: named, with the schema it was read with.
    classifier_key = _job(api, {**base, "params": {"optimizer": "adam"}})
    assert classifier_key.status_code == 422, classifier_key.text
    message = classifier_key.json()["message"]
    assert "params.optimizer" in message and "LMTrainParams" in message
    bad_lora = _job(api, {**base, "params": {"lora": {"r": 0}}})
    assert bad_lora.status_code == 422 and "params.lora.r" in bad_lora.json()["message"]
    # No family takes a boolean epoch count: refused by the body itself, the same way.
    strict = _job(api, {**base, "params": {"epochs": True}})
    assert strict.status_code == 422 and "params.epochs" in strict.json()["message"]
    assert "send a JSON integer" in strict.json()["message"]

    version = fake_version(prod_settings, model["id"])
    labels = _job(
        api, {"kind": "generate", "model_version_id": version, "params": {"labels": [1]}}
    )
    assert labels.status_code == 422 and "takes prompts, not class labels" in labels.text
    empty = _job(
        api, {"kind": "generate", "model_version_id": version, "params": {"prompts": [" "]}}
    )
    assert empty.status_code == 422 and "prompts[0] is empty" in empty.json()["message"]
    # A batch a classifier's evaluation takes but a language model's does not.
    evaluate = _job(
        api,
        {
            "kind": "evaluate",
            "model_version_id": version,
            "forget": {"subject_ids": ["x"]},
            "params": {"batch_size": 2000},
        },
    )
    assert evaluate.status_code == 422, evaluate.text
    message = evaluate.json()["message"]
    assert "params.batch_size" in message and "LMEvaluateParams" in message


def test_a_dataset_of_the_wrong_modality_is_refused(
    api: Any, people: dict, mnist_small: dict, prod_settings: Any
) -> None:
    settings = prod_settings
    classifier = new_model(api, {"name": "mlp", "num_classes": 10, "width": 8})
    train = _job(
        api,
        {"kind": "train", "model_id": classifier["id"], "dataset_id": people["id"]},
    )
    assert train.status_code == 422, train.text
    assert "holds text" in train.json()["detail"] and train.json()["field"] == "dataset_id"

    evaluate = _job(
        api,
        {
            "kind": "evaluate",
            "model_version_id": fake_version(settings, classifier["id"]),
            "dataset_id": people["id"],
        },
    )
    assert evaluate.status_code == 422 and "holds text" in evaluate.json()["detail"]

    # A classifier version whose recorded lineage is the text dataset (made under the API:
    # the API no longer trains one) is not unlearned from it either.
    with session_factory(settings)() as session:
        dsv = session.scalar(
            select(DatasetVersion).where(DatasetVersion.dataset_id == people["id"])
        )
        assert dsv is not None
        n = dsv.num_samples
        version = add_model_version(
            session,
            classifier["id"],
            status="active",
            source="train",
            checkpoint_key=f"models/{classifier['id']}/none.safetensors",
            config_key=f"models/{classifier['id']}/none.json",
            sha256="0" * 64,
            size_bytes=0,
            config={},
            metrics={},
            dataset_version_id=dsv.id,
            training_mask=encode_mask(list(range(n)), n),
        )
        session.commit()
        version_id = version.id
    unlearn = _job(
        api,
        {
            "kind": "unlearn",
            "model_version_id": version_id,
            "method": "finetune",
            "forget": {"sample_ids": ["x"]},
        },
    )
    assert unlearn.status_code == 422 and "holds text" in unlearn.json()["detail"]

    lm = _lm_model(api)
    on_images = _job(
        api, {"kind": "train", "model_id": lm["id"], "dataset_id": mnist_small["id"]}
    )
    assert on_images.status_code == 422 and "holds images" in on_images.json()["detail"]
    assert "causal_lm models read text" in on_images.json()["detail"]
