"""The family declarations: each describes itself to JSON with valid schemas, the registry
names the known families when asked for another, and a declaration that contradicts
itself is refused when it is made."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

import contracts
from contracts import FamilyDeclaration, UnknownFamily, families, get_family
from contracts.classifier import CLASSIFIER, ArchitectureConfig, TrainParams
from contracts.family import JOB_KINDS, PARAMS_KINDS, register
from contracts.judge import JudgeParams
from contracts.methods import describe_methods

KEYS = {
    "name", "title", "summary", "data", "architectures", "architecture_schema",
    "params_schemas", "job_kinds", "scopes", "judged", "judge_schema", "policy_defaults",
    "methods", "docs", "uploadable",
}


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [schema["$ref"]] if isinstance(schema.get("$ref"), str) else []
        return found + [r for v in schema.values() for r in _refs(v)]
    if isinstance(schema, list):
        return [r for v in schema for r in _refs(v)]
    return []


def _check_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A JSON Schema of an object whose every ``$ref`` resolves and whose properties are
    the model's fields."""
    assert schema["type"] == "object", schema
    assert set(schema["properties"]) == set(model.model_fields)
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"]


@pytest.mark.parametrize("family", families(), ids=lambda f: f.name)
def test_every_family_describes_itself_to_json(family: FamilyDeclaration) -> None:
    described = json.loads(json.dumps(family.describe()))
    assert set(described) == KEYS
    assert described["name"] == family.name and described["title"] and described["summary"]
    _check_schema(described["architecture_schema"], family.architecture_schema)
    assert set(described["params_schemas"]) <= set(PARAMS_KINDS)
    for kind, schema in described["params_schemas"].items():
        assert kind in described["job_kinds"]
        _check_schema(schema, family.params[kind])
    assert set(described["job_kinds"]) <= set(JOB_KINDS) and "unlearn" in described["job_kinds"]
    assert described["scopes"], "a family that forgets nothing has nothing to do here"
    if family.judged:
        _check_schema(described["judge_schema"], JudgeParams)
    else:
        assert described["judge_schema"] is None
    assert described["methods"] == sorted(
        m["name"] for m in describe_methods() if m["family"] == family.name
    ), "the method registry is the source of a family's methods"
    assert described["docs"].startswith("docs/")
    assert all(u["format"] and u["description"] for u in described["uploadable"])


def test_the_declarations_agree_with_what_the_families_are_today() -> None:
    assert [f.name for f in families()] == [f.name for f in contracts.FAMILIES]
    assert contracts.family_names()[:4] == ["classifier", "ddpm", "text2image", "stable_diffusion"]
    assert contracts.families_where(judged=True) == ("ddpm", "text2image")
    assert contracts.families_where(prompted=True) == ("text2image", "stable_diffusion")
    assert get_family("classifier").params_schema("train") is TrainParams
    assert get_family("classifier").architecture_schema is ArchitectureConfig
    assert get_family("ddpm").policy_defaults["class_method"] == "esd"
    assert get_family("text2image").policy_defaults["class_method"] == "uce"
    assert not get_family("stable_diffusion").runs("train")
    assert get_family("stable_diffusion").takes("concept")
    assert not get_family("classifier").takes("concept")
    assert "sisa" in CLASSIFIER.methods


def test_an_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(UnknownFamily) as caught:
        get_family("llama")
    assert isinstance(caught.value, LookupError) and caught.value.name == "llama"
    assert "classifier" in str(caught.value) and "ddpm" in str(caught.value)


def test_a_declaration_is_frozen() -> None:
    with pytest.raises(AttributeError):
        CLASSIFIER.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        CLASSIFIER.params["generate"] = TrainParams  # type: ignore[index]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"params": {"generate": TrainParams}}, "params of a kind it does not run"),
        ({"job_kinds": ("train", "unlearn", "evaluate", "dream")}, "dream"),
        ({"scopes": ("labels", "everything")}, "everything"),
        ({"judged": True}, "judged and judge_schema"),
    ],
)
def test_a_declaration_that_contradicts_itself_is_refused(
    change: dict[str, Any], needle: str
) -> None:
    fields = {name: getattr(CLASSIFIER, name) for name in CLASSIFIER.__dataclass_fields__}
    with pytest.raises(TypeError, match=needle):
        FamilyDeclaration(**{**fields, **change})


def test_a_family_is_registered_once() -> None:
    with pytest.raises(TypeError, match="declared twice"):
        register(CLASSIFIER)


def test_every_declared_family_has_a_worker_runtime_running_its_job_kinds() -> None:
    """The declaration says what the API accepts; the runtime what the worker runs."""
    from workers.families import RUNTIMES

    for family in families():
        assert family.name in RUNTIMES, f"{family.name} has no worker runtime"
        assert set(family.job_kinds) == RUNTIMES[family.name].kinds, family.name
