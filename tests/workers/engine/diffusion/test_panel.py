"""The judge panel: Wilson intervals, cells, disagreement, and every judge scoring the
images of every sampler setting (two judges of different architectures, tiny world)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.workers.engine.diffusion.conftest import ERASED, DiffusionWorld
from workers.engine.diffusion.judge import (
    Judge,
    NamedJudge,
    SamplerSetting,
    disagreement,
    erasure_cell,
    evaluate_erasure,
    evaluate_panel,
    train_judge,
    wilson_interval,
)
from workers.engine.errors import EngineError


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (8, 10, 0.4902, 0.9433),  # the textbook example (Newcombe 1998, Agresti-Coull 1998)
        (0, 16, 0.0, 0.1936),  # an erased class, 16 images: 0 seen is still up to ~19 %
        (16, 16, 0.8064, 1.0),
        (1, 100, 0.0018, 0.0545),
    ],
)
def test_wilson_interval_matches_known_values(
    successes: int, n: int, low: float, high: float
) -> None:
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)
    assert lo <= successes / n <= hi


def test_wilson_interval_narrows_with_more_images_and_refuses_nonsense() -> None:
    small, large = wilson_interval(0, 16), wilson_interval(0, 256)
    assert large[1] < small[1] / 10
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(EngineError):
        wilson_interval(5, 4)


def test_a_cell_counts_erased_and_retained_images_separately() -> None:
    prompted = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 1, 2, 2, 2])
    cell = erasure_cell("j", SamplerSetting(25, seed=3), predicted, prompted, [0])
    assert cell["forget_rate"] == 0.25 and cell["forget_count"] == 4
    assert cell["retain_accuracy"] == 0.75 and cell["retain_count"] == 4
    assert cell["forget_ci"] == list(wilson_interval(1, 4))
    assert cell["retain_ci"] == list(wilson_interval(3, 4))
    assert cell["sampler"] == "ddim 25 steps, seed 3" and cell["judge"] == "j"


def test_disagreement_is_the_largest_gap_within_a_sampler_and_within_a_judge() -> None:
    cells = [
        {"judge": "a", "sampler": "s1", "forget_rate": 0.0, "retain_accuracy": 0.9},
        {"judge": "b", "sampler": "s1", "forget_rate": 0.1, "retain_accuracy": 0.7},
        {"judge": "a", "sampler": "s2", "forget_rate": 0.05, "retain_accuracy": 0.85},
        {"judge": "b", "sampler": "s2", "forget_rate": 0.4, "retain_accuracy": 0.8},
    ]
    gaps = disagreement(cells)
    assert gaps["between_judges"]["forget_rate"] == pytest.approx(0.35)
    assert gaps["between_judges"]["retain_accuracy"] == pytest.approx(0.2)
    assert gaps["between_samplers"]["forget_rate"] == pytest.approx(0.3)
    assert gaps["between_samplers"]["retain_accuracy"] == pytest.approx(0.1)


@pytest.fixture(scope="module")
def mlp_judge(world: DiffusionWorld) -> Judge:
    """A second judge sharing neither architecture nor images with ``judge``."""
    return train_judge(world.arch, world.held_out, network="mlp", width=64)


def test_every_judge_scores_every_sampler_setting(
    world: DiffusionWorld, judge: Judge, mlp_judge: Judge
) -> None:
    assert mlp_judge.arch.name == "mlp" and judge.arch.name == "small_cnn"
    judges = [NamedJudge("cnn", judge), NamedJudge("mlp", mlp_judge)]
    samplers = [SamplerSetting(5, seed=0), SamplerSetting(10, seed=1)]
    report = evaluate_panel(
        world.arch,
        world.state_dict,
        judges,
        [ERASED],
        samplers,
        real=world.held_out,
        samples_per_class=6,
    )
    cells = report["cells"]
    assert [(c["judge"], c["num_inference_steps"]) for c in cells] == [
        ("cnn", 5),
        ("mlp", 5),
        ("cnn", 10),
        ("mlp", 10),
    ]
    for cell in cells:
        assert cell["forget_count"] == 6 and cell["retain_count"] == 12
        assert cell["forget_ci"][0] <= cell["forget_rate"] <= cell["forget_ci"][1]
        assert cell["retain_ci"][0] <= cell["retain_accuracy"] <= cell["retain_ci"][1]
    assert report["judges"] == ["cnn", "mlp"] and len(report["samplers"]) == 2
    assert report["worst"]["forget_rate"] == max(c["forget_rate"] for c in cells)
    assert report["worst"]["retain_accuracy"] == min(c["retain_accuracy"] for c in cells)
    assert report["disagreement"] == disagreement(cells)
    # The headline is the first judge at the first setting, the same draw as
    # evaluate_erasure with that judge and setting.
    single = evaluate_erasure(
        world.arch,
        world.state_dict,
        judge,
        [ERASED],
        real=world.held_out,
        samples_per_class=6,
        num_inference_steps=5,
    )
    for key in ("forget_rate", "retain_accuracy", "frechet_retain", "judge_accuracy_real"):
        assert report[key] == pytest.approx(single[key]), key
    assert cells[0]["forget_rate"] == pytest.approx(single["forget_rate"])


def test_a_panel_refuses_what_it_cannot_score(world: DiffusionWorld, judge: Judge) -> None:
    named = [NamedJudge("cnn", judge)]
    with pytest.raises(EngineError, match="differ"):
        evaluate_panel(
            world.arch, world.state_dict, named, [ERASED], [SamplerSetting(2), SamplerSetting(2)]
        )
    with pytest.raises(EngineError, match="names must differ"):
        evaluate_panel(world.arch, world.state_dict, named * 2, [ERASED], [SamplerSetting(2)])
    other = train_judge(world.arch, world.held_out, width=4, num_classes=5)
    with pytest.raises(EngineError, match="5 classes"):
        evaluate_panel(
            world.arch,
            world.state_dict,
            [*named, NamedJudge("five", other)],
            [ERASED],
            [SamplerSetting(2)],
        )
