"""GET /api/v1/families publishes the family declarations in the one shape the dashboard
builds its forms from; every number in it is what the API itself then enforces."""

from __future__ import annotations

import uuid

from contracts import families
from contracts.classifier import EvaluateParams, TrainParams
from contracts.ddpm import DiffusionArchitecture
from contracts.judge import JudgeParams
from contracts.text2image import PromptGenerateParams

V1 = "/api/v1"
SHAPE = {
    "name", "title", "summary", "data", "architectures", "architecture_schema",
    "params_schemas", "job_kinds", "scopes", "judged", "judge_schema", "policy_defaults",
    "methods", "docs", "uploadable",
}


def _by_name(api) -> dict[str, dict]:
    response = api.get(f"{V1}/families")
    assert response.status_code == 200, response.text
    return {f["name"]: f for f in response.json()}


def test_every_declared_family_is_listed_in_the_dashboard_shape(api) -> None:
    listed = api.get(f"{V1}/families").json()
    assert [f["name"] for f in listed] == [f.name for f in families()]
    for family in listed:
        assert set(family) == SHAPE, family["name"]
        assert set(family["params_schemas"]) == {"train", "generate", "evaluate"}
        assert all(set(u) == {"format", "description"} for u in family["uploadable"])


def test_schemas_are_the_ones_requests_are_validated_with(api) -> None:
    by_name = _by_name(api)
    classifier, ddpm = by_name["classifier"], by_name["ddpm"]
    assert classifier["params_schemas"]["train"] == TrainParams.model_json_schema()
    assert classifier["params_schemas"]["evaluate"] == EvaluateParams.model_json_schema()
    assert classifier["params_schemas"]["generate"] is None
    assert "torchvision" in classifier["architectures"] and not classifier["judged"]
    assert classifier["judge_schema"] is None
    assert ddpm["architecture_schema"] == DiffusionArchitecture.model_json_schema()
    assert ddpm["judged"] and ddpm["judge_schema"] == JudgeParams.model_json_schema()
    sd = by_name["stable_diffusion"]
    assert sd["params_schemas"]["train"] is None and "train" not in sd["job_kinds"]
    assert sd["params_schemas"]["generate"] == PromptGenerateParams.model_json_schema()
    assert sd["scopes"] == ["concept"] and sd["uploadable"][0]["format"] == "diffusers_pipeline"
    assert by_name["text2image"]["uploadable"] == []


def test_methods_are_the_method_registrys(api) -> None:
    methods = api.get(f"{V1}/methods").json()
    for name, family in _by_name(api).items():
        assert family["methods"] == sorted(m["name"] for m in methods if m["family"] == name)


def test_policy_defaults_are_what_a_new_model_gets(api) -> None:
    arch = {
        "family": "ddpm", "num_classes": 10, "sample_size": 8, "block_out_channels": [8, 16],
        "attention_levels": [False, False], "norm_num_groups": 4,
    }
    model = api.post(
        f"{V1}/models", json={"name": f"fam-{uuid.uuid4().hex[:8]}", "architecture": arch}
    )
    assert model.status_code == 201, model.text
    policy = api.get(f"{V1}/models/{model.json()['id']}/deletion-policy").json()
    published = api.get(f"{V1}/families/ddpm").json()["policy_defaults"]
    assert published == policy and published["class_method"] == "esd"
    assert _by_name(api)["classifier"]["policy_defaults"]["class_method"] == "boundary_shrink"


def test_one_family_and_an_unknown_one(api) -> None:
    one = api.get(f"{V1}/families/text2image")
    assert one.status_code == 200 and one.json() == _by_name(api)["text2image"]
    assert "concept" in one.json()["scopes"] and one.json()["judged"]
    unknown = api.get(f"{V1}/families/llama")
    assert unknown.status_code == 404
    assert "llama" in unknown.json()["detail"] and "classifier" in unknown.json()["detail"]


def test_reading_families_needs_a_key(anon) -> None:
    assert anon.get(f"{V1}/families").status_code == 401
