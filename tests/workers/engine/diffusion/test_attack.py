"""The class-embedding attack: it runs, is seeded, and brings an erased class back.

On the tiny world, ESD erases class 0 from the label; the attack optimises a free
class-embedding vector against real images of class 0, and the judge should see class
0 again at least as often as with the plain (erased) label.
"""

from __future__ import annotations

import pytest
import torch

from tests.workers.engine.diffusion.conftest import ERASED, DiffusionWorld, PromptWorld
from workers.engine.diffusion.attack import embedding_attack, prompt_embedding_attack
from workers.engine.diffusion.judge import Judge
from workers.engine.diffusion.prompted import load_text2image
from workers.engine.diffusion.unlearning import ConceptUnlearnData, get_diffusion_method
from workers.engine.errors import EngineError

SMALL = {"steps": 30, "lr": 0.1, "samples_per_class": 16, "num_inference_steps": 10}


@pytest.fixture(scope="module")
def erased(world: DiffusionWorld) -> dict:
    params = {"steps": 30, "lr": 1e-3, "trajectories": 8, "ddim_steps": 10, "device": "cpu"}
    result = get_diffusion_method("esd").run(world.arch, world.state_dict, world.data, params)
    return result.state_dict


def test_the_attack_brings_the_erased_class_back(
    world: DiffusionWorld, judge: Judge, erased: dict
) -> None:
    report = embedding_attack(world.arch, erased, judge, [ERASED], world.images, **SMALL)
    assert 0.0 <= report["attack_success_rate"] <= 1.0
    assert report["baseline_forget_rate"] < 0.5, report
    assert report["attack_success_rate"] > report["baseline_forget_rate"], report
    again = embedding_attack(world.arch, erased, judge, [ERASED], world.images, **SMALL)
    assert again["attack_success_rate"] == report["attack_success_rate"]
    assert again["final_loss"] == report["final_loss"]


def test_the_attack_leaves_the_model_alone_and_refuses_bad_input(
    world: DiffusionWorld, judge: Judge, erased: dict
) -> None:
    before = {k: v.clone() for k, v in erased.items()}
    embedding_attack(world.arch, erased, judge, [ERASED], world.images, steps=2)
    assert all((erased[k] == before[k]).all() for k in before)
    with pytest.raises(EngineError, match="real images of class 0"):
        embedding_attack(
            world.arch, erased, judge, [ERASED], world.images.subset(world.images.labels != 0)
        )
    with pytest.raises(EngineError, match="at least one"):
        embedding_attack(world.arch, erased, judge, [], world.images)


def test_the_prompt_embedding_attack_brings_an_erased_caption_back(
    prompt_world: PromptWorld, judge: Judge
) -> None:
    """On a text2image model whose caption of class 0 was erased (UCE, towards the empty
    prompt), optimising that caption's token embeddings against real images of class 0
    makes the model draw it again more often than the erased caption does."""
    prompt = prompt_world.prompts[ERASED]
    data = ConceptUnlearnData(prompts=[prompt], anchor="", preserve=prompt_world.prompts[1:])
    erased = get_diffusion_method("uce").run_concepts(
        load_text2image(prompt_world.arch, prompt_world.state_dict, "cpu"), data, {"lam": 0.1}
    )
    model = load_text2image(prompt_world.arch, erased.state_dict, "cpu")
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    small = {**SMALL, "lr": 0.05}
    report = prompt_embedding_attack(model, judge, {ERASED: prompt}, prompt_world.images, **small)
    assert report["attack"] == "prompt_embedding"
    assert report["baseline_forget_rate"] < 0.5, report
    assert report["attack_success_rate"] > report["baseline_forget_rate"], report
    again = prompt_embedding_attack(model, judge, {ERASED: prompt}, prompt_world.images, **small)
    assert again["attack_success_rate"] == report["attack_success_rate"]
    assert all(torch.equal(v, before[k]) for k, v in model.unet.state_dict().items())
    with pytest.raises(EngineError, match="at least one"):
        prompt_embedding_attack(model, judge, {}, prompt_world.images)
