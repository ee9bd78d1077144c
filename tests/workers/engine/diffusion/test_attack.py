"""The class-embedding attack: it runs, is seeded, and brings an erased class back.

On the tiny world, ESD erases class 0 from the label; the attack optimises a free
class-embedding vector against real images of class 0, and the judge should see class
0 again at least as often as with the plain (erased) label.
"""

from __future__ import annotations

import pytest

from tests.workers.engine.diffusion.conftest import ERASED, DiffusionWorld
from workers.engine.diffusion.attack import embedding_attack
from workers.engine.diffusion.judge import Judge
from workers.engine.diffusion.unlearning import get_diffusion_method
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
