"""The common test every registered diffusion-erasure method must pass.

Directions, not numbers: on the tiny 8x8 world, the erased class's noise prediction
must move clearly more than the retained classes' (MSE of epsilon predictions on fixed
inputs, measured here independently of the method's own report), tensors the method
did not train must be bit-identical to the parent's, runs are reproducible and
cancellable, and the params schema is complete. A method joins by registering itself
and adding its small-budget params to ``FAST``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import torch

from contracts.methods import get_method_spec
from contracts.methods.diffusion import DIFFUSION_METHODS as DECLARED
from tests.workers.engine.diffusion.conftest import (
    ERASED,
    NUM_CLASSES,
    DiffusionWorld,
    PromptWorld,
)
from workers.engine.diffusion.checkpoint import apply_delta, load_delta, save_delta
from workers.engine.diffusion.judge import Judge, evaluate_erasure
from workers.engine.diffusion.models import build_unet, epsilon_shift
from workers.engine.diffusion.unlearning import (
    DIFFUSION_METHODS,
    ConceptUnlearnData,
    DiffusionUnlearnData,
    get_diffusion_method,
)
from workers.engine.diffusion.unlearning.common import select_parameters
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.training import Callbacks
from workers.engine.unlearning.base import InvalidMethodParams, UnknownMethod

# Small budgets that show the effect on the tiny world, far below the defaults.
FAST: dict[str, dict[str, Any]] = {
    "esd": {"steps": 30, "lr": 1e-3, "trajectories": 8, "ddim_steps": 10},
    "gradient_ascent": {"steps": 20, "lr": 1e-4},
    "concept_ablation": {
        "anchor_label": 1,
        "steps": 30,
        "lr": 1e-3,
        "anchor_images": 16,
        "ddim_steps": 10,
    },
    "salun": {"steps": 30, "lr": 1e-3, "retain_weight": 1.0, "saliency_draws": 1},
    "retrain": {"train_steps": 60},
    "uno": {"steps": 30, "lr": 1e-3},
    "uce": {"lam": 0.1, "preserve_scale": 1.0},
}
# Params of the runs on the tiny text2image model (ESD-x: the paper's choice when the
# rest of the model must stay intact; concept_ablation's anchor is the scope's prompt).
PROMPT_FAST: dict[str, dict[str, Any]] = {
    "esd": {**FAST["esd"], "train_method": "xattn"},
    "concept_ablation": {"steps": 30, "lr": 1e-3, "anchor_images": 16, "ddim_steps": 10},
    "uce": FAST["uce"],
}
# The erased class must move at least this many times more than the retained ones.
SELECTIVITY = 1.5
ALL_NAMES = sorted(DIFFUSION_METHODS)
# Methods that erase classes of a ddpm model; the prompt-only ones (uce) are checked on
# the tiny text2image model below.
NAMES = [n for n in ALL_NAMES if "ddpm" in DIFFUSION_METHODS[n].families]
PROMPT_METHODS = [n for n in ALL_NAMES if set(DIFFUSION_METHODS[n].families) - {"ddpm"}]


class Recorder(Callbacks):
    def __init__(self, stop_after: int | None = None) -> None:
        self.progress: list[int] = []
        self.stop_after = stop_after

    def on_progress(self, step: int, total_steps: int) -> None:
        self.progress.append(step)

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.progress) >= self.stop_after


def run(world: DiffusionWorld, name: str, **overrides: Any) -> Any:
    params = {**FAST[name], "device": "cpu", **overrides}
    return get_diffusion_method(name).run(
        world.arch, world.state_dict, world.data, params, Recorder(), train_params=world.recipe
    )


def test_every_method_has_fast_params() -> None:
    assert set(FAST) == set(DIFFUSION_METHODS)
    assert set(PROMPT_FAST) == set(PROMPT_METHODS)
    assert {"esd", "gradient_ascent", "concept_ablation", "salun", "retrain"} <= set(NAMES)


@pytest.fixture(scope="module")
def results(world: DiffusionWorld) -> dict[str, Any]:
    """One run per method, shared by the checks below (the expensive part)."""
    return {name: run(world, name) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_erased_class_moves_more_than_the_others(
    world: DiffusionWorld, results: dict[str, Any], name: str
) -> None:
    after = results[name].state_dict
    # Probe seed 99: other fixed inputs than the method's own report uses.
    forget = epsilon_shift(world.arch, world.state_dict, after, ERASED, num=32, seed=99)
    retain = [
        epsilon_shift(world.arch, world.state_dict, after, c, num=32, seed=99)
        for c in range(NUM_CLASSES)
        if c != ERASED
    ]
    assert forget > 1e-3, f"{name} barely changed the erased class ({forget:.2e})"
    assert forget > SELECTIVITY * max(retain), (name, forget, retain)
    metrics = results[name].metrics
    assert metrics["forget_epsilon_shift"] > metrics["retain_epsilon_shift"]


@pytest.mark.parametrize("name", NAMES)
def test_untrained_tensors_are_untouched(
    world: DiffusionWorld, results: dict[str, Any], name: str
) -> None:
    result = results[name]
    assert set(result.state_dict) == set(world.state_dict)
    if result.trained_keys is None:
        return
    frozen = set(world.state_dict) - set(result.trained_keys)
    for key in frozen:
        assert torch.equal(result.state_dict[key], world.state_dict[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_runs_are_reproducible_and_leave_the_parent_alone(world: DiffusionWorld, name: str) -> None:
    parent = {k: v.clone() for k, v in world.state_dict.items()}
    short = {"train_steps": 3} if name == "retrain" else {"steps": 3}
    first, second = run(world, name, **short), run(world, name, **short)
    for key in first.state_dict:
        assert torch.equal(first.state_dict[key], second.state_dict[key]), key
        assert torch.equal(world.state_dict[key], parent[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_methods_are_cancellable(world: DiffusionWorld, name: str) -> None:
    params = {**FAST[name], "device": "cpu"}
    with pytest.raises(TrainingStopped):
        get_diffusion_method(name).run(
            world.arch,
            world.state_dict,
            world.data,
            params,
            Recorder(stop_after=2),
            train_params=world.recipe,
        )


@pytest.mark.parametrize("name", ALL_NAMES)
def test_params_schema_is_complete(name: str) -> None:
    cls = DIFFUSION_METHODS[name]
    assert all(f.description for f in cls.Params.model_fields.values()), name
    assert cls.Params.model_validate(FAST[name])
    concept = get_diffusion_method(name).params_class("text2image")
    assert all(f.description for f in concept.model_fields.values()), name
    if name in PROMPT_FAST:
        assert concept.model_validate(PROMPT_FAST[name])
    with pytest.raises(InvalidMethodParams):
        get_diffusion_method(name).parse_params({**FAST[name], "no_such_option": 1})


def test_declarations_and_implementations_match() -> None:
    """Every diffusion method declared in the contracts has an engine implementation
    carrying that declaration, and every implementation is declared."""
    declared = {spec.name for spec in DECLARED}
    assert declared == set(DIFFUSION_METHODS), (
        f"declared without implementation: {sorted(declared - set(DIFFUSION_METHODS))}; "
        f"implemented without declaration: {sorted(set(DIFFUSION_METHODS) - declared)}"
    )
    for name, cls in DIFFUSION_METHODS.items():
        assert cls.spec is get_method_spec(name, cls.spec.job_families[0]), name
        assert cls.families == cls.spec.families and cls.Params is cls.spec.params, name
    assert DIFFUSION_METHODS["retrain"].exact and not DIFFUSION_METHODS["esd"].exact
    assert DIFFUSION_METHODS["salun"].needs_retain_images
    code = (
        "import sys, workers.engine.diffusion.unlearning as u;"
        "sys.exit(1 if not u.DIFFUSION_METHODS or 'torch' in sys.modules else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_requests_are_refused_by_name(world: DiffusionWorld) -> None:
    with pytest.raises(UnknownMethod, match="esd"):
        get_diffusion_method("forget_everything")
    with pytest.raises(EngineError, match="classes 0..2"):
        get_diffusion_method("esd").run(world.arch, world.state_dict, DiffusionUnlearnData([7]))
    with pytest.raises(EngineError, match="needs images"):
        get_diffusion_method("salun").run(world.arch, world.state_dict, DiffusionUnlearnData([0]))
    with pytest.raises(EngineError, match="needs the original training recipe"):
        get_diffusion_method("retrain").run(world.arch, world.state_dict, world.data)
    with pytest.raises(EngineError, match="anchor_label 0 is one of the erased"):
        run(world, "concept_ablation", anchor_label=0)
    with pytest.raises(EngineError, match="retain images include erased"):
        DiffusionUnlearnData([0], retain=world.images)
    with pytest.raises(EngineError, match="empty"):
        DiffusionUnlearnData([])


def test_esd_subsets_map_onto_the_unet() -> None:
    names = [n for n, _ in build_unet(world_arch()).named_parameters()]
    xattn = select_parameters(names, "xattn")
    noxattn = select_parameters(names, "noxattn")
    assert "class_embedding.weight" in xattn
    assert all(n == "class_embedding.weight" or ".time_emb_proj." in n for n in xattn)
    assert not set(xattn) & set(noxattn)
    left_out = set(names) - set(xattn) - set(noxattn)
    assert left_out and all(
        n.startswith(("time_embedding.", "conv_out.", "conv_norm_out.")) for n in left_out
    )
    assert select_parameters(names, "full") == names


def world_arch() -> Any:
    from tests.workers.engine.diffusion.conftest import tiny_arch

    return tiny_arch()


def test_esd_xattn_saves_a_small_delta(world: DiffusionWorld, tmp_path) -> None:
    result = run(world, "esd", train_method="xattn", steps=5)
    path = tmp_path / "delta.safetensors"
    sha, keys = save_delta(path, world.state_dict, result.state_dict, "0" * 64, {"method": "esd"})
    assert set(keys) <= set(result.trained_keys) and "class_embedding.weight" in keys
    delta, meta = load_delta(path)
    assert meta["parent_sha256"] == "0" * 64 and meta["method"] == "esd"
    child = apply_delta(world.state_dict, delta)
    assert all(torch.equal(child[k], result.state_dict[k]) for k in child)
    full_size = sum(v.numel() for v in world.state_dict.values())
    assert sum(v.numel() for v in delta.values()) < 0.25 * full_size


def test_the_judge_sees_esd_erase_the_class(
    world: DiffusionWorld, judge: Judge, results: dict[str, Any]
) -> None:
    settings = {"samples_per_class": 16, "num_inference_steps": 10, "real": world.held_out}
    before = evaluate_erasure(world.arch, world.state_dict, judge, [ERASED], **settings)
    after = evaluate_erasure(world.arch, results["esd"].state_dict, judge, [ERASED], **settings)
    assert before["forget_rate"] >= 0.9, before
    assert after["forget_rate"] < before["forget_rate"] - 0.2, (before, after)
    assert after["frechet_forget"] > before["frechet_forget"]


# --------------------------------------------------------------------------- prompt families


def run_concepts(pw: PromptWorld, name: str, **overrides: Any) -> Any:
    from workers.engine.diffusion.prompted import load_text2image

    data = ConceptUnlearnData(
        prompts=[pw.prompts[ERASED]],
        anchor="a photo",
        preserve=[p for i, p in enumerate(pw.prompts) if i != ERASED],
    )
    model = load_text2image(pw.arch, pw.state_dict)
    params = {**PROMPT_FAST[name], "device": "cpu", **overrides}
    return get_diffusion_method(name).run_concepts(model, data, params, Recorder())


def prompt_epsilon_shift(pw: PromptWorld, after: dict[str, torch.Tensor], prompt: str) -> float:
    """MSE between the parent's and the child's noise predictions for ``prompt`` on
    fixed noisy inputs (the prompt analogue of ``epsilon_shift``)."""
    from workers.engine.diffusion.prompted import load_text2image

    a, b = load_text2image(pw.arch, pw.state_dict), load_text2image(pw.arch, after)
    g = torch.Generator().manual_seed(99)
    x_t = torch.randn(32, 1, 8, 8, generator=g)
    t = torch.randint(0, pw.arch.num_train_timesteps, (32,), generator=g)
    with torch.no_grad():
        ctx = a.encode([prompt] * 32)
        return float(torch.nn.functional.mse_loss(a.predict(x_t, t, ctx), b.predict(x_t, t, ctx)))


@pytest.mark.parametrize("name", PROMPT_METHODS)
def test_prompt_methods_erase_the_prompt_and_keep_the_others(
    prompt_world: PromptWorld, name: str
) -> None:
    result = run_concepts(prompt_world, name)
    forget = prompt_epsilon_shift(prompt_world, result.state_dict, prompt_world.prompts[ERASED])
    retain = [
        prompt_epsilon_shift(prompt_world, result.state_dict, p)
        for i, p in enumerate(prompt_world.prompts)
        if i != ERASED
    ]
    assert forget > 1e-3, f"{name} barely changed the erased prompt ({forget:.2e})"
    assert forget > SELECTIVITY * max(retain), (name, forget, retain)
    # Only the tensors it declares changed; the rest bit-identical; reruns identical.
    frozen = set(prompt_world.state_dict) - set(result.trained_keys)
    assert frozen and all(
        torch.equal(result.state_dict[k], prompt_world.state_dict[k]) for k in frozen
    )
    again = run_concepts(prompt_world, name)
    assert all(torch.equal(again.state_dict[k], result.state_dict[k]) for k in result.state_dict)


def test_uce_maps_erased_keys_and_values_onto_the_anchor(
    prompt_world: PromptWorld, tmp_path: Any
) -> None:
    """The measurable proxy of UCE's objective: for every edited projection W, W_new c_erased
    is close to W_old c_anchor, and W_new c_kept stays W_old c_kept."""
    from workers.engine.diffusion.prompted import load_text2image, xattn_keys

    result = run_concepts(prompt_world, "uce")
    model = load_text2image(prompt_world.arch, prompt_world.state_dict)
    erased, anchor = model.encode([prompt_world.prompts[ERASED]])[0], model.encode(["a photo"])[0]
    kept = model.encode([p for i, p in enumerate(prompt_world.prompts) if i != ERASED])
    keys = xattn_keys(prompt_world.state_dict)
    assert keys and sorted(result.trained_keys) == keys
    for key in keys:
        old, new = prompt_world.state_dict[key], result.state_dict[key]
        gap_before = (erased @ old.T - anchor @ old.T).norm()
        gap_after = (erased @ new.T - anchor @ old.T).norm()
        assert gap_after < 0.25 * gap_before, (key, float(gap_after), float(gap_before))
        drift = (kept @ new.T - kept @ old.T).norm() / (kept @ old.T).norm()
        assert drift < 0.1, (key, float(drift))
    assert result.metrics["erase_residual"] < 0.25 and result.metrics["preserve_drift"] < 0.1
    # The saved delta is exactly those projections (in this tiny UNet they are a large
    # share of the weights because the 384-wide text embedding dominates; in SD ~3 %).
    _, changed = save_delta(
        tmp_path / "d.safetensors", prompt_world.state_dict, result.state_dict, "0" * 64
    )
    assert changed == keys


def test_uce_refuses_a_ddpm_model_and_ddpm_methods_refuse_prompts(
    world: DiffusionWorld, prompt_world: PromptWorld
) -> None:
    with pytest.raises(EngineError, match="uce needs a prompt-conditioned model"):
        get_diffusion_method("uce").run(world.arch, world.state_dict, world.data)
    with pytest.raises(EngineError, match="does not take prompts"):
        get_diffusion_method("retrain").run_concepts(None, ConceptUnlearnData(["a photo"]))
    with pytest.raises(EngineError, match="both erased and preserved"):
        ConceptUnlearnData(["a cat"], preserve=["a cat"])
    with pytest.raises(EngineError, match="to_k and/or to_v"):
        run_concepts(prompt_world, "uce", projections=["to_q"])
