"""Cost-aware defaults: without explicit epochs a method spends a share of the original's
own training (resolved from its recipe at run time), so no default costs more than half a
retrain on the benchmarked settings; explicit epochs still win."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.classifier import TrainParams
from contracts.methods import DEFAULT_BUDGET_FRACTION
from tests.workers.engine.unlearning.conftest import World
from workers.engine.training import Callbacks
from workers.engine.unlearning import METHODS, IterativeParams, get_method

APPROXIMATE = sorted(name for name, cls in METHODS.items() if not cls.exact)
ITERATIVE = [n for n in APPROXIMATE if issubclass(METHODS[n].Params, IterativeParams)]


@pytest.mark.parametrize("name", ITERATIVE)
def test_resolved_epochs_scale_with_the_originals_training(name: str) -> None:
    method = get_method(name)
    # A large forget set, so even forget walkers land below their reference epochs.
    short = method.budget(None, 40_000, 160_000, train_epochs=2)
    long = method.budget(None, 40_000, 160_000, train_epochs=8)
    assert short.source == long.source == "budget"
    assert long.passes > short.passes
    assert long.original_passes == 4 * short.original_passes
    # Within its share of the original, or one pass where the share buys less than that.
    assert long.passes <= DEFAULT_BUDGET_FRACTION * long.original_passes + 1e-6
    assert long.epochs is not None and short.epochs is not None
    assert long.epochs <= method.default_epochs


def test_a_retain_walker_under_one_epoch_walks_part_of_the_retain_set() -> None:
    finetune = get_method("finetune")
    one_epoch = finetune.budget(None, 100, 900, train_epochs=1)
    assert one_epoch.epochs == 1 and one_epoch.retain_samples is not None
    assert one_epoch.retain_samples < 900
    assert one_epoch.cost_fraction is not None and one_epoch.cost_fraction <= 0.5
    five = finetune.budget(None, 100, 900, train_epochs=5)
    assert (five.epochs, five.retain_samples) == (1, None)  # the policy's old "1 epoch"


def test_explicit_epochs_win_over_the_budget() -> None:
    finetune = get_method("finetune")
    given = finetune.budget({"epochs": 7}, 100, 900, train_epochs=1)
    assert (given.source, given.epochs, given.retain_samples) == ("explicit", 7, None)
    assert given.cost_fraction == pytest.approx(7.0)  # priced honestly, not trimmed
    unknown = finetune.budget(None, 100, 900, train_epochs=None)
    assert (unknown.source, unknown.epochs) == ("reference", finetune.default_epochs)
    assert unknown.cost_fraction is None


@pytest.mark.parametrize("name", APPROXIMATE)
@pytest.mark.parametrize("train_epochs", [2, 4, 10, 50, 200])
@pytest.mark.parametrize("forget_share", [0.01, 0.1])
def test_no_default_costs_more_than_half_a_retrain(
    name: str, train_epochs: int, forget_share: float
) -> None:
    total = 8_000
    n_forget = int(total * forget_share)
    budget = get_method(name).budget(None, n_forget, total - n_forget, train_epochs)
    assert budget.cost_fraction is not None
    assert budget.cost_fraction <= 0.5, budget.note(name)


class Steps(Callbacks):
    def __init__(self) -> None:
        self.total = 0
        self.lines: list[str] = []

    def on_progress(self, step: int, total: int) -> None:
        self.total = total

    def on_log(self, message: str) -> None:
        self.lines.append(message)


def _steps(world: World, train_epochs: int, **params: Any) -> tuple[int, Any]:
    recipe = world.recipe.model_copy(update={"epochs": train_epochs})
    callbacks = Steps()
    result = get_method("finetune").run(
        world.arch,
        world.state_dict,
        world.data,
        {"device": "cpu", "batch_size": 16, **params},
        callbacks,
        train_params=recipe,
    )
    assert callbacks.lines and "budget" in callbacks.lines[0]
    return callbacks.total, result


def test_a_run_takes_the_steps_its_budget_resolves(random_world: World) -> None:
    """Resolved at run time from the recipe: twice the original's epochs, twice the steps."""
    short, result = _steps(random_world, train_epochs=10)
    long, _ = _steps(random_world, train_epochs=20)
    assert long == 2 * short
    assert result.metrics["estimated_cost_fraction"] <= DEFAULT_BUDGET_FRACTION * 10 / 9 + 1e-9
    assert result.log[0].startswith("finetune budget")
    explicit, _ = _steps(random_world, train_epochs=8, epochs=3)
    assert explicit == 3 * len(range(0, len(random_world.data.retain.labels), 16))


def test_a_recipe_without_epochs_is_no_basis_for_a_budget(random_world: World) -> None:
    """An uploaded checkpoint's recipe is all defaults: the method's reference epochs run."""
    callbacks = Steps()
    get_method("gradient_ascent").run(
        random_world.arch,
        random_world.state_dict,
        random_world.data,
        {"device": "cpu", "batch_size": 16},
        callbacks,
        train_params=TrainParams.model_validate({}),
    )
    assert "no recipe known" in callbacks.lines[0] and "5 epoch(s)" in callbacks.lines[0]
