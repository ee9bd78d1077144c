"""The common test every registered language-model unlearning method must pass.

On a tiny llama that recites 10 forget and 30 retain answers (``conftest.lm_world``):
each approximate method raises the forget answers' NLL by a clear margin while the
retain answers' NLL stays within a bound, runs the same twice with one seed, refuses bad
params with a typed error, fails with a typed error on a NaN loss, and can be cancelled.
A new method joins by registering itself and adding its small-budget params to ``FAST``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
import torch

from contracts.causal_lm import LMTrainParams, LoraParams
from contracts.methods import base as contract
from contracts.methods.causal_lm import CAUSAL_LM_METHODS
from tests.workers.engine.lm.unlearning.conftest import (
    N_FORGET,
    N_RETAIN,
    RECIPE,
    LMWorld,
    strangers,
)
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.lm.data import TextRecord, encode
from workers.engine.lm.unlearning import (
    LM_METHODS,
    InvalidMethodParams,
    LMUnlearnData,
    LMUnlearningDiverged,
    UnknownMethod,
    UnsupportedRecords,
    describe_lm_methods,
    get_lm_method,
)
from workers.engine.lm.unlearning import common as C
from workers.engine.lm.unlearning.retrain import RecipeMissing
from workers.engine.training import Callbacks

# Small-budget params per method: enough steps to show the effect on the tiny world,
# nowhere near the defaults (which are for SmolLM2-sized models).
FAST: dict[str, dict[str, Any]] = {
    "gradient_ascent": {"epochs": 6, "lr": 5e-4, "batch_size": 10},
    "grad_diff": {"epochs": 10, "lr": 1e-3, "batch_size": 5, "retain_weight": 3.0},
    "npo": {"epochs": 10, "lr": 1e-3, "batch_size": 5, "beta": 0.5},
    "simnpo": {"epochs": 10, "lr": 2e-3, "batch_size": 5, "beta": 1.5},
    "idk_nll": {"epochs": 15, "lr": 3e-3, "batch_size": 5},
    "idk_dpo": {"epochs": 25, "lr": 3e-3, "batch_size": 5},
    # lr 5e-3: at 1e-2 the retain answers' rise ran 0.43-0.84 nats across seeds (over the
    # bound on some numeric paths); at 5e-3 it is 0.20-0.27 with the forget rise 2.4-3.0.
    "rmu": {
        "epochs": 10,
        "lr": 5e-3,
        "batch_size": 5,
        "layer": 1,
        "update_depth": 2,
        "retain_weight": 10.0,
    },
    "mudman": {"epochs": 10, "lr": 5e-4, "batch_size": 5},
    "retrain": {},
}
APPROXIMATE = sorted(name for name, cls in LM_METHODS.items() if not cls.exact)

# Nats per token. The fine-tune recites both sets at ~0.05; a model that never saw an
# answer is at ~5.6.
FORGET_RISE = 0.5
RETAIN_RISE_BOUND = 0.5
SELECTIVITY = 2.0

_RUNS: dict[str, tuple[dict[str, torch.Tensor], dict[str, float]]] = {}


def _state(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def unlearned(name: str, world: LMWorld) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Run ``name`` with its ``FAST`` params once per session (weights, NLLs)."""
    if name not in _RUNS:
        result = get_lm_method(name).run(world.fresh(), world.tokenizer, world.data, FAST[name])
        model = result.model
        nlls = {
            "forget": world.nll(model, world.data.forget),
            "retain": world.nll(model, world.data.retain),
        }
        _RUNS[name] = (_state(model), nlls)
    return _RUNS[name]


def test_every_method_has_test_params() -> None:
    assert set(FAST) == set(LM_METHODS)
    assert len(APPROXIMATE) >= 8


def test_every_declared_method_is_implemented() -> None:
    # The API lists contracts' declarations; each must have an implementation here.
    assert {spec.name for spec in CAUSAL_LM_METHODS} == set(LM_METHODS)
    for spec in CAUSAL_LM_METHODS:
        assert LM_METHODS[spec.name].spec is spec


@pytest.mark.parametrize("name", APPROXIMATE)
def test_method_forgets_and_keeps_retain(name: str, lm_world: LMWorld) -> None:
    forget_before = lm_world.nll(lm_world.model, lm_world.data.forget)
    retain_before = lm_world.nll(lm_world.model, lm_world.data.retain)
    assert forget_before < 0.2 and retain_before < 0.2, "the fine-tune must recite both sets"
    _, nlls = unlearned(name, lm_world)
    forget_rise = nlls["forget"] - forget_before
    retain_rise = nlls["retain"] - retain_before
    print(
        f"{name}: forget NLL {forget_before:.3f} -> {nlls['forget']:.3f}, "
        f"retain NLL {retain_before:.3f} -> {nlls['retain']:.3f}"
    )
    assert forget_rise >= FORGET_RISE, f"{name} did not forget: {nlls}"
    assert retain_rise <= RETAIN_RISE_BOUND, f"{name} damaged the retain answers: {nlls}"
    assert forget_rise >= SELECTIVITY * max(retain_rise, 0.0), f"{name} is not selective"


@pytest.mark.parametrize("name", APPROXIMATE)
def test_method_is_deterministic_with_a_seed(name: str, lm_world: LMWorld) -> None:
    first, _ = unlearned(name, lm_world)
    again = get_lm_method(name).run(lm_world.fresh(), lm_world.tokenizer, lm_world.data, FAST[name])
    second = _state(again.model)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{name}: {key} differs between runs"


@pytest.mark.parametrize("name", sorted(LM_METHODS))
def test_params_schema_is_complete(name: str) -> None:
    method = get_lm_method(name)
    schema = method.Params.model_json_schema()
    for field, spec in schema["properties"].items():
        assert spec.get("description") or "$ref" in spec or "anyOf" in spec, (name, field)
    assert method.parse_params(None) == method.Params()
    assert method.parse_params(method.Params().model_dump()) == method.Params()
    assert method.paper and "arXiv" in method.paper or method.exact


@pytest.mark.parametrize("name", sorted(LM_METHODS))
def test_bad_params_raise_a_typed_error(name: str) -> None:
    method = get_lm_method(name)
    with pytest.raises(InvalidMethodParams, match="not_a_param") as caught:
        method.parse_params({"not_a_param": 1})
    # An engine error for the runner, the contracts' error for the API.
    assert isinstance(caught.value, EngineError)
    assert isinstance(caught.value, contract.InvalidMethodParams)
    if "lr" in method.Params.model_fields:
        with pytest.raises(InvalidMethodParams, match="lr"):
            method.parse_params({"lr": -1.0})


def test_rmu_refuses_lora_and_a_missing_layer(lm_world: LMWorld) -> None:
    rmu = get_lm_method("rmu")
    with pytest.raises(InvalidMethodParams, match="lora"):
        rmu.parse_params({"lora": {}})
    with pytest.raises(InvalidMethodParams, match="layer 5"):
        rmu.run(lm_world.fresh(), lm_world.tokenizer, lm_world.data, {"layer": 5, "epochs": 1})


def test_describe_lm_methods_needs_no_torch() -> None:
    code = (
        "import sys, json\n"
        "from workers.engine.lm.unlearning import describe_lm_methods\n"
        "rows = describe_lm_methods()\n"
        "print(json.dumps([sorted(rows[0]), [r['name'] for r in rows], "
        "[m for m in ('torch', 'transformers', 'peft') if m in sys.modules]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    keys, names, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert names == sorted(LM_METHODS)
    assert {"name", "family", "exact", "paper", "params_schema"} <= set(keys)
    assert heavy == []
    rows = {row["name"]: row for row in describe_lm_methods()}
    assert rows["retrain"]["exact"] and not rows["npo"]["exact"]
    assert all(row["family"] == "causal_lm" for row in rows.values())


def test_unknown_method_lists_known_names() -> None:
    with pytest.raises(UnknownMethod, match="npo"):
        get_lm_method("nope")


@pytest.mark.parametrize("name", APPROXIMATE)
def test_nan_loss_raises_diverged(name: str, lm_world: LMWorld) -> None:
    model = lm_world.fresh()
    with torch.no_grad():
        model.get_input_embeddings().weight[:] = float("nan")
    params = {**FAST[name], "epochs": 1}
    with pytest.raises(LMUnlearningDiverged, match="nan"):
        get_lm_method(name).run(model, lm_world.tokenizer, lm_world.data, params)


class _StopAt(Callbacks):
    def __init__(self, step: int) -> None:
        self.calls = 0
        self.step = step

    def should_stop(self) -> bool:
        self.calls += 1
        return self.calls > self.step


@pytest.mark.parametrize("name", APPROXIMATE)
def test_should_stop_cancels(name: str, lm_world: LMWorld) -> None:
    with pytest.raises(TrainingStopped):
        get_lm_method(name).run(
            lm_world.fresh(), lm_world.tokenizer, lm_world.data, FAST[name], _StopAt(1)
        )


def test_retain_ceiling_stops_a_destructive_run(lm_world: LMWorld) -> None:
    params = {
        "epochs": 5,
        "lr": 1e-2,
        "batch_size": 5,
        "retain_loss_ceiling": 1.0,
        "probe_every_steps": 1,
    }
    with pytest.raises(LMUnlearningDiverged, match="ceiling"):
        get_lm_method("gradient_ascent").run(
            lm_world.fresh(), lm_world.tokenizer, lm_world.data, params
        )


def test_idk_methods_refuse_plain_text(lm_world: LMWorld) -> None:
    data = LMUnlearnData(
        forget=[TextRecord(sample_id="t0", text="Kalomi lives on Vazo street.")],
        retain=lm_world.data.retain,
    )
    for name in ("idk_nll", "idk_dpo"):
        with pytest.raises(UnsupportedRecords, match="plain"):
            get_lm_method(name).run(lm_world.fresh(), lm_world.tokenizer, data, {"epochs": 1})


def test_idk_nll_teaches_the_refusal(lm_world: LMWorld) -> None:
    data = LMUnlearnData(lm_world.data.forget, lm_world.data.retain, idk=["No idea."])
    result = get_lm_method("idk_nll").run(
        lm_world.fresh(), lm_world.tokenizer, data, FAST["idk_nll"]
    )
    refusals = [
        TextRecord(sample_id=r.sample_id, question=r.question, answer="No idea.")
        for r in lm_world.data.forget
    ]
    assert lm_world.nll(result.model, refusals) < lm_world.nll(result.model, data.forget) - 1.0


def test_unlearn_data_is_checked(lm_world: LMWorld) -> None:
    with pytest.raises(EngineError, match="forget set is empty"):
        LMUnlearnData(forget=[], retain=lm_world.data.retain)
    with pytest.raises(EngineError, match="both forgotten and retained"):
        LMUnlearnData(forget=lm_world.data.retain[:1], retain=lm_world.data.retain)


def test_rmu_updates_only_its_layers(lm_world: LMWorld) -> None:
    before = _state(lm_world.model)
    after, _ = unlearned("rmu", lm_world)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(
        k.startswith(("model.layers.0.mlp.", "model.layers.1.mlp.")) for k in changed
    )


def test_lora_variant_forgets_and_returns_a_plain_model(lm_world: LMWorld) -> None:
    params = {**FAST["grad_diff"], "lr": 1e-2, "lora": LoraParams(r=8, alpha=16).model_dump()}
    result = get_lm_method("grad_diff").run(
        lm_world.fresh(), lm_world.tokenizer, lm_world.data, params
    )
    assert not hasattr(result.model, "peft_config")
    assert set(result.model.state_dict()) == set(lm_world.model.state_dict())
    forget = lm_world.nll(result.model, lm_world.data.forget)
    retain = lm_world.nll(result.model, lm_world.data.retain)
    print(f"grad_diff+LoRA: forget NLL {forget:.3f}, retain NLL {retain:.3f}")
    assert forget >= FORGET_RISE
    assert retain <= RETAIN_RISE_BOUND


def test_default_budget_stays_within_the_fraction() -> None:
    # A fictitious-people-like split: 5 % of 4000 records forgotten, a 3-epoch fine-tune.
    n_forget, n_retain, epochs = 200, 3800, 3.0
    original = epochs * (n_forget + n_retain)
    for name in APPROXIMATE:
        method = get_lm_method(name)
        budget = method.budget(None, n_forget, n_retain, epochs)
        assert budget.source == "budget", name
        assert budget.passes <= 0.2 * original + 1e-6, (name, budget)
        assert budget.cost_fraction is not None and budget.cost_fraction <= 0.25, name
        assert method.budget({"epochs": 2}, n_forget, n_retain, epochs).epochs == 2
        assert method.budget(None, n_forget, n_retain, None).source == "reference"
    exact = get_lm_method("retrain").budget(None, n_forget, n_retain, epochs)
    assert exact.cost_fraction == pytest.approx(1.0)


def test_run_reports_its_cost_against_the_fine_tune(lm_world: LMWorld) -> None:
    result = get_lm_method("simnpo").run(
        lm_world.fresh(),
        lm_world.tokenizer,
        lm_world.data,
        {**FAST["simnpo"], "epochs": None},
        train_params=RECIPE,
    )
    # No epochs given: the budget (0.2 x 60 epochs x 40 records) buys the reference 10.
    assert result.metrics["estimated_passes"] == pytest.approx(10 * N_FORGET * 2)
    assert result.metrics["estimated_cost_fraction"] == pytest.approx(
        10 * N_FORGET * 2 / (RECIPE.epochs * N_RETAIN)
    )
    assert "budget" in result.log[0]
    # A recipe read from a job row (a dict) is the same recipe.
    budget_only = get_lm_method("simnpo").budget(None, N_FORGET, N_RETAIN, RECIPE.epochs)
    assert budget_only.passes == result.metrics["estimated_passes"]
    with pytest.raises(EngineError, match="recipe"):
        get_lm_method("simnpo").run(
            lm_world.fresh(),
            lm_world.tokenizer,
            lm_world.data,
            FAST["simnpo"],
            train_params={"epochs": "many"},
        )


def test_retrain_is_exact_and_needs_the_recipe(lm_world: LMWorld) -> None:
    retrain = get_lm_method("retrain")
    with pytest.raises(RecipeMissing):
        retrain.run(copy.deepcopy(lm_world.base), lm_world.tokenizer, lm_world.data)
    result = retrain.run(
        copy.deepcopy(lm_world.base),
        lm_world.tokenizer,
        lm_world.data,
        train_params=RECIPE.model_dump(exclude_unset=True),  # as a job row holds it
    )
    forget = lm_world.nll(result.model, lm_world.data.forget)
    retain = lm_world.nll(result.model, lm_world.data.retain)
    print(f"retrain: forget NLL {forget:.3f}, retain NLL {retain:.3f}")
    assert forget > 1.5  # never saw them: the random answers are unguessable
    assert retain < 0.3
    assert result.metrics["estimated_cost_fraction"] == pytest.approx(1.0)
    assert isinstance(RECIPE, LMTrainParams)


# --------------------------------------------------------------------------- stop rule


def _with_strangers(world: LMWorld) -> LMUnlearnData:
    return LMUnlearnData(world.data.forget, world.data.retain, calibration=strangers())


def _prob(world: LMWorld, model: Any, records: list[TextRecord]) -> float:
    encoded = encode(world.tokenizer, records, RECIPE.max_length)
    return C.mean_answer_prob(model, encoded, torch.device("cpu"))


@pytest.mark.parametrize("name", APPROXIMATE)
def test_stop_at_holdout_is_honoured_by_every_method(name: str, lm_world: LMWorld) -> None:
    """Each method checks the rule before its first step and after every epoch, stops
    at the first check that finds the forget answers at the strangers' level, lands
    inside that epoch (at most four bisection checks, fewer once a point is within the
    band below the level), and hands back the model it measured there."""
    params = {**FAST[name], "stop_at_holdout": True}
    result = get_lm_method(name).run(
        lm_world.fresh(), lm_world.tokenizer, _with_strangers(lm_world), params
    )
    m = result.metrics
    epochs, after = params["epochs"], int(m["stopped_after_epochs"])
    steps_per_epoch = -(-N_FORGET // params["batch_size"])
    if after >= 0:
        assert m["stop_forget_prob"] <= m["stop_calibration_prob"]
        landing = int(m["stop_checks"]) - after - 1
        assert 0 <= landing <= (4 if after > 0 else 0)
        assert m["steps"] == after * steps_per_epoch
        if after > 0 and landing < 4:  # landing ended early: close enough to the level
            assert m["stop_forget_prob"] >= 0.9 * m["stop_calibration_prob"]
        assert 0 < m["stop_last_epoch_kept"] <= 1
        assert _prob(lm_world, result.model, lm_world.data.forget) == pytest.approx(
            m["stop_forget_prob"], rel=1e-4
        )
        assert any("stopped after" in line for line in result.log)
    else:  # never reached: every epoch ran, and the last check says why
        assert m["stop_checks"] == epochs + 1 and m["steps"] == epochs * steps_per_epoch
        assert m["stop_forget_prob"] > m["stop_calibration_prob"]


def test_stop_at_holdout_lands_at_the_strangers_level_instead_of_below(
    lm_world: LMWorld,
) -> None:
    """SimNPO at a rate that overshoots: run to the end it pushes the forget answers far
    below the strangers' (what membership attacks see as clearly as memorisation); with
    the rule it stops at their level, in fewer steps."""
    params = {"epochs": 20, "lr": 4e-3, "batch_size": 5, "beta": 1.5}
    simnpo = get_lm_method("simnpo")
    data = _with_strangers(lm_world)
    full = simnpo.run(lm_world.fresh(), lm_world.tokenizer, data, params)
    stopped = simnpo.run(
        lm_world.fresh(), lm_world.tokenizer, data, {**params, "stop_at_holdout": True}
    )

    def ratio(model: Any) -> float:
        forget = _prob(lm_world, model, data.forget)
        return forget / _prob(lm_world, model, strangers())

    full_ratio, stopped_ratio = ratio(full.model), ratio(stopped.model)
    print(f"forget/strangers probability: to the end {full_ratio:.2f}, stopped {stopped_ratio:.2f}")
    assert 0 <= stopped.metrics["stopped_after_epochs"] < params["epochs"]
    assert stopped.metrics["steps"] < full.metrics["steps"]
    assert stopped_ratio <= 1.0
    assert full_ratio < 0.75 < stopped_ratio  # the full run overshot; the rule did not


def test_the_landing_band_trades_checks_for_closeness(lm_world: LMWorld) -> None:
    """The same overshooting SimNPO run landed three ways: band 0 keeps the whole
    crossing epoch (no landing checks, furthest below the level), band 1 spends every
    bisection step (closest to the level, most checks), the default 0.9 stops bisecting
    at the first point within 10 % below the level. The rate is high enough that the
    crossing epoch ends well below the level (to 0.75 x), so landing matters."""
    params = {"epochs": 20, "lr": 1.5e-2, "batch_size": 5, "beta": 1.5, "stop_at_holdout": True}
    simnpo = get_lm_method("simnpo")
    data = _with_strangers(lm_world)
    runs = {
        band: simnpo.run(
            lm_world.fresh(), lm_world.tokenizer, data, {**params, "stop_landing_band": band}
        ).metrics
        for band in (0.0, 0.9, 1.0)
    }
    after = {band: int(m["stopped_after_epochs"]) for band, m in runs.items()}
    assert len(set(after.values())) == 1 and after[0.0] > 0  # the same crossing epoch
    landing = {band: int(m["stop_checks"]) - after[band] - 1 for band, m in runs.items()}
    level = {band: m["stop_forget_prob"] / m["stop_calibration_prob"] for band, m in runs.items()}
    print(f"landing checks {landing}, forget/calibration at the stop {level}")
    assert landing[0.0] == 0 and runs[0.0]["stop_last_epoch_kept"] == 1.0
    assert landing[1.0] == 4
    assert 0 < landing[0.9] < landing[1.0]  # it landed, and saved checks doing so
    assert all(value <= 1.0 for value in level.values())  # every one is at the level
    assert level[0.0] < 0.9 <= level[0.9] <= level[1.0]


def test_stop_at_holdout_can_stop_before_any_step_or_never(lm_world: LMWorld) -> None:
    params = {**FAST["npo"], "stop_at_holdout": True}
    npo = get_lm_method("npo")
    # "Strangers" the model recites (the retain answers under new ids): the forget
    # answers are already no likelier, so nothing is changed.
    known = [
        TextRecord(sample_id=f"k{i}", question=r.question, answer=r.answer)
        for i, r in enumerate(lm_world.data.retain[:10])
    ]
    data = LMUnlearnData(lm_world.data.forget, lm_world.data.retain, calibration=known)
    result = npo.run(lm_world.fresh(), lm_world.tokenizer, data, params)
    assert result.metrics["stopped_after_epochs"] == 0 and result.metrics["steps"] == 0
    after = _state(result.model)
    assert all(torch.equal(v, after[k]) for k, v in _state(lm_world.model).items())
    # A rate too small to move anything: the level is never reached, every epoch runs.
    slow = npo.run(
        lm_world.fresh(), lm_world.tokenizer, _with_strangers(lm_world), {**params, "lr": 1e-7}
    )
    assert slow.metrics["stopped_after_epochs"] == -1
    assert slow.metrics["steps"] == params["epochs"] * 2


def test_stop_at_holdout_needs_calibration_people_never_trained_on(lm_world: LMWorld) -> None:
    with pytest.raises(UnsupportedRecords, match="calibration"):
        get_lm_method("npo").run(
            lm_world.fresh(), lm_world.tokenizer, lm_world.data, {"stop_at_holdout": True}
        )
    with pytest.raises(EngineError, match="never saw"):
        LMUnlearnData(
            lm_world.data.forget, lm_world.data.retain, calibration=lm_world.data.retain[:2]
        )
