"""The method declarations: one published row per (method, family), typed lookups, the
cost model a plan prices with, and no torch anywhere near them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from contracts.methods import (
    CLASSIFIER_METHODS,
    DIFFUSION_METHODS,
    ClassifierMethodSpec,
    InvalidMethodParams,
    MethodError,
    UnknownMethod,
    describe_methods,
    get_classifier_method,
    get_method_spec,
    method_names,
)


def test_rows_are_sorted_unique_and_json() -> None:
    rows = describe_methods()
    keys = [(row["name"], row["family"]) for row in rows]
    assert keys == sorted(set(keys))
    json.dumps(rows)
    families = {row["family"] for row in rows}
    assert families == {"classifier", "ddpm", "text2image", "stable_diffusion", "causal_lm"}
    assert len([k for k in keys if k[1] == "classifier"]) == len(CLASSIFIER_METHODS) == 15


def test_names_shared_between_families_resolve_by_family() -> None:
    assert get_method_spec("retrain", "classifier") in CLASSIFIER_METHODS
    assert get_method_spec("retrain", "ddpm") in DIFFUSION_METHODS
    # retrain on text2image trains a new model; the engine's own erasure is ddpm-only.
    text2image = get_method_spec("retrain", "text2image")
    assert text2image is get_method_spec("retrain", "ddpm")
    assert text2image.describe("text2image")["scopes"] == ["labels", "sample_ids", "subject_ids"]
    assert "retrain" not in method_names("stable_diffusion")
    assert get_method_spec("esd", "stable_diffusion").describe("stable_diffusion")["scopes"] == [
        "concept"
    ]


def test_prompt_families_get_their_own_params() -> None:
    spec = get_method_spec("concept_ablation", "ddpm")
    assert "anchor_label" in spec.describe("ddpm")["params_schema"]["required"]
    assert "anchor_label" not in spec.describe("text2image")["params_schema"]["properties"]


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UnknownMethod, match="gradient_ascent"):
        get_method_spec("forget_everything", "classifier")
    with pytest.raises(UnknownMethod, match="uce"):
        get_method_spec("finetune", "text2image")
    with pytest.raises(MethodError):
        get_classifier_method("esd")


def test_params_are_parsed_or_refused_by_name() -> None:
    spec = get_classifier_method("finetune")
    assert spec.parse_params(None).lr == 0.01
    assert spec.parse_params({"lr": 0.5}).lr == 0.5
    with pytest.raises(InvalidMethodParams, match="finetune"):
        spec.parse_params({"no_such_option": 1})
    sisa = get_classifier_method("sisa")
    assert sisa.exact and not sisa.params.model_fields
    assert sisa.describe()["params_schema"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    "spec", [s for s in CLASSIFIER_METHODS if not s.exact], ids=lambda s: s.name
)
def test_a_default_budget_stays_under_its_share_of_a_retrain(spec: ClassifierMethodSpec) -> None:
    # 100 forget and 5000 retain samples of an original trained for 20 epochs.
    budget = spec.budget(None, 100, 5000, 20.0)
    assert budget.cost_fraction is not None and budget.retrain_passes == 100_000
    assert budget.passes > 0
    # Within the default 0.2 of the original's passes (102 000), so well under a retrain.
    assert budget.cost_fraction <= 0.2 * 102_000 / 100_000 + 1e-9, budget.note(spec.name)


def test_explicit_epochs_win_and_no_recipe_takes_the_reference() -> None:
    spec = get_classifier_method("finetune")
    explicit = spec.budget({"epochs": 3}, 100, 5000, 20.0)
    assert (explicit.epochs, explicit.source, explicit.passes) == (3, "explicit", 15_000)
    reference = spec.budget(None, 100, 5000, None)
    assert (reference.epochs, reference.source) == (spec.default_epochs, "reference")
    assert reference.cost_fraction is None
    exact = get_classifier_method("retrain").budget(None, 100, 5000, 20.0)
    assert exact.source == "exact" and exact.cost_fraction == 1.0


def test_declarations_load_no_torch() -> None:
    code = (
        "import sys, json, contracts.methods as m; json.dumps(m.describe_methods());"
        "bad = [x for x in ('torch', 'numpy', 'workers', 'api', 'core') if x in sys.modules];"
        "print(bad, file=sys.stderr); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
