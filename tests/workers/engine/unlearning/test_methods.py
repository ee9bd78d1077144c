"""The common test every registered unlearning method must pass.

It checks directions, not numbers: forget accuracy falls (to near zero for a forgotten
class, far down for memorised mislabelled samples), retain accuracy stays close to the
original, the params schema is complete, and the run is cancellable. A new method joins
by a declaration in ``contracts.methods.classifier``, an implementation registered here,
and its small-budget params in ``FAST``; the test fails while one lacks another.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig
from contracts.methods import CLASSIFIER_SCOPES, get_method_spec
from contracts.methods.classifier import CLASSIFIER_METHODS, OWN_JOB_PATH, FinetuneParams
from tests.workers.engine.unlearning.conftest import World
from workers.engine.errors import TrainingStopped
from workers.engine.nets import build_network
from workers.engine.training import Callbacks
from workers.engine.unlearning import (
    METHODS,
    ForgetLossParams,
    UnknownMethod,
    UnlearnData,
    UnlearningDiverged,
    UnlearningMethod,
    UnsupportedScope,
    get_method,
    register,
)
from workers.engine.unlearning import common as C
from workers.engine.unlearning.base import InvalidMethodParams, loreun_weights

# Small-budget params per method and scope: enough steps to show the effect on the toy
# world, nowhere near the paper defaults (which are for ResNet-18 on CIFAR-10).
FAST: dict[str, dict[str, dict[str, Any]]] = {
    "retrain": {"labels": {}, "sample_ids": {}},
    "finetune": {
        "labels": {"epochs": 5, "lr": 0.1},
        "sample_ids": {"epochs": 5, "lr": 0.1},
    },
    "l1_sparse": {
        "labels": {"epochs": 5, "lr": 0.05, "alpha": 0.01},
        "sample_ids": {"epochs": 5, "lr": 0.05, "alpha": 0.01},
    },
    "gradient_ascent": {
        "labels": {"epochs": 3, "lr": 0.005, "batch_size": 16},
        "sample_ids": {"epochs": 4, "lr": 0.005, "batch_size": 16},
    },
    "neggrad_plus": {
        "labels": {"epochs": 2, "lr": 0.01, "retain_weight": 0.7, "batch_size": 32},
        "sample_ids": {"epochs": 2, "lr": 0.05, "retain_weight": 0.9, "batch_size": 32},
    },
    "random_label": {
        "labels": {"epochs": 3, "lr": 0.01, "batch_size": 16},
        "sample_ids": {"epochs": 6, "lr": 0.03, "batch_size": 16},
    },
    "salun": {
        "labels": {"epochs": 3, "lr": 0.01, "batch_size": 16},
        "sample_ids": {"epochs": 6, "lr": 0.03, "batch_size": 16},
    },
    "boundary_shrink": {"labels": {"epochs": 3, "lr": 0.01, "batch_size": 16}},
    "boundary_expanding": {"labels": {"epochs": 3, "lr": 0.01, "batch_size": 16}},
    "scrub": {
        "labels": {"epochs": 3, "max_epochs": 2, "lr": 0.01, "batch_size": 16},
        "sample_ids": {"epochs": 3, "max_epochs": 2, "lr": 0.01, "batch_size": 16},
    },
    "bad_teacher": {
        # Class-wise runs the two-phase stochastic-teacher variant, random forgetting the
        # mixed-batch original, so both schedules are exercised.
        "labels": {"epochs": 3, "lr": 1e-3, "batch_size": 16, "stochastic_teacher": True},
        "sample_ids": {"epochs": 3, "lr": 5e-3, "batch_size": 16},
    },
    "ssd": {
        "labels": {"selection_weighting": 3.0},
        "sample_ids": {"selection_weighting": 10.0},
    },
    "slug": {"labels": {}, "sample_ids": {"forget_accuracy_target": 0.5}},
    "opc": {
        "labels": {"epochs": 3, "lr": 0.01, "batch_size": 16, "contraction_weight": 0.1},
        "sample_ids": {"epochs": 6, "lr": 0.05, "batch_size": 16, "contraction_weight": 0.1},
    },
}

# How far retain accuracy may fall on the toy world (it starts at 1.0).
RETAIN_DROP = 0.1
# Class-wise forgetting: forget accuracy must end near zero (chance is 0.25).
CLASSWISE_FORGET_MAX = 0.1
# Random forgetting of memorised mislabelled samples: forget accuracy is 1.0 before and
# 0.0 for a retrained model; it must fall by at least 0.3.
RANDOM_FORGET_MAX = 0.7


class Recorder(Callbacks):
    def __init__(self, stop_after: int | None = None) -> None:
        self.progress: list[tuple[int, int]] = []
        self.stop_after = stop_after

    def on_progress(self, step: int, total_steps: int) -> None:
        self.progress.append((step, total_steps))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.progress) >= self.stop_after


def accuracy(world: World, state_dict: dict[str, torch.Tensor], which: str) -> float:
    net = build_network(world.arch)
    net.load_state_dict(state_dict)
    return C.accuracy_of(net, getattr(world.data, which), world.arch, torch.device("cpu"))


def run(world: World, name: str, **overrides: Any) -> Any:
    method = get_method(name)
    params = {**FAST[name][str(world.data.scope)], "device": "cpu", **overrides}
    return method.run(
        world.arch, world.state_dict, world.data, params, Recorder(), train_params=world.recipe
    )


def world_for(scope: str, request: pytest.FixtureRequest) -> World:
    return request.getfixturevalue("classwise_world" if scope == "labels" else "random_world")


CASES = [
    (name, scope)
    for name, cls in sorted(METHODS.items())
    for scope in ("labels", "sample_ids")
    if scope in cls.scopes
]


def test_every_method_has_test_params() -> None:
    assert set(FAST) == set(METHODS)


@pytest.mark.parametrize(("name", "scope"), CASES)
def test_method_forgets_and_keeps_retain(
    name: str, scope: str, request: pytest.FixtureRequest
) -> None:
    world = world_for(scope, request)
    before_forget = accuracy(world, world.state_dict, "forget")
    before_retain = accuracy(world, world.state_dict, "retain")
    original = {k: v.clone() for k, v in world.state_dict.items()}

    result = run(world, name)

    after_forget = accuracy(world, result.state_dict, "forget")
    after_retain = accuracy(world, result.state_dict, "retain")
    print(
        f"{name}/{scope}: forget {before_forget:.3f}->{after_forget:.3f}, "
        f"retain {before_retain:.3f}->{after_retain:.3f}"
    )
    limit = CLASSWISE_FORGET_MAX if scope == "labels" else RANDOM_FORGET_MAX
    assert after_forget <= limit < before_forget
    assert after_retain >= before_retain - RETAIN_DROP
    # Same keys and shapes as the input, finite, and the input left untouched.
    assert {k: v.shape for k, v in result.state_dict.items()} == {
        k: v.shape for k, v in original.items()
    }
    assert all(torch.isfinite(v.float()).all() for v in result.state_dict.values())
    assert all(torch.equal(world.state_dict[k], original[k]) for k in original)
    assert all(np.isfinite(v) for v in result.metrics.values())
    assert "forget_accuracy" in result.metrics


@pytest.mark.parametrize("name", sorted(METHODS))
def test_params_schema_is_complete(name: str) -> None:
    cls = METHODS[name]
    schema = cls.Params.model_json_schema()
    json.dumps(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    for field, spec in schema["properties"].items():
        assert "default" in spec, f"{name}.{field} has no default"
        assert spec.get("description"), f"{name}.{field} has no description"
    # Defaults alone validate, and an unknown key is refused.
    cls.Params()
    with pytest.raises(InvalidMethodParams):
        get_method(name).parse_params({"no_such_option": 1})
    assert cls.paper and cls.name == name and cls.family == "classifier"


def test_declarations_and_implementations_match() -> None:
    """Every method declared in the contracts has an engine implementation carrying that
    declaration, and every implementation is declared (sisa runs as its own job path)."""
    declared = {spec.name for spec in CLASSIFIER_METHODS}
    assert declared - OWN_JOB_PATH == set(METHODS), (
        f"declared without implementation: {sorted(declared - OWN_JOB_PATH - set(METHODS))}; "
        f"implemented without declaration: {sorted(set(METHODS) - declared)}"
    )
    for name, cls in METHODS.items():
        assert cls.spec is get_method_spec(name, "classifier"), name
        assert cls.Params is cls.spec.params and cls.scopes == cls.spec.scopes, name
    from workers.engine.unlearning.sisa import unlearn_sisa

    assert callable(unlearn_sisa)


def test_register_refuses_an_undeclared_implementation() -> None:
    from contracts.methods.base import ClassifierMethodSpec

    undeclared = ClassifierMethodSpec(
        name="forget_everything", paper="none", summary="Not declared.", params=FinetuneParams
    )

    class Undeclared(UnlearningMethod):
        spec = undeclared

        def unlearn(self, *args: Any) -> Any:
            raise AssertionError("never runs")

    with pytest.raises(TypeError, match="not declared"):
        register(Undeclared)
    assert "forget_everything" not in METHODS


def test_importing_the_registry_loads_no_torch() -> None:
    code = (
        "import sys; import workers.engine.unlearning as u; "
        "assert u.METHODS and 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_method_lists_known_names() -> None:
    with pytest.raises(UnknownMethod, match="gradient_ascent"):
        get_method("forget_everything")


PARTIAL = sorted(n for n, c in METHODS.items() if c.scopes != CLASSIFIER_SCOPES)


def test_boundary_methods_are_classwise_only() -> None:
    assert {"boundary_shrink", "boundary_expanding"} <= set(PARTIAL)


@pytest.mark.parametrize("name", PARTIAL)
def test_unsupported_scope_is_refused(name: str, random_world: World) -> None:
    cls = METHODS[name]
    missing = [s for s in ("labels", "sample_ids", "subject_ids") if s not in cls.scopes]
    data = random_world.data
    if missing[0] == "labels":
        data = UnlearnData(data.forget, data.retain, data.test, forget_labels=[0])
    else:
        data = UnlearnData(data.forget, data.retain, data.test, scope=missing[0])  # type: ignore[arg-type]
    with pytest.raises(UnsupportedScope):
        get_method(name).run(random_world.arch, random_world.state_dict, data, {"device": "cpu"})


@pytest.mark.parametrize("name", sorted(METHODS))
def test_should_stop_cancels(name: str, classwise_world: World) -> None:
    world = classwise_world
    params = {**FAST[name]["labels"], "device": "cpu"}
    # Stopping at the very first check must raise, whatever the method's loop shape.
    with pytest.raises(TrainingStopped):
        get_method(name).run(
            world.arch, world.state_dict, world.data, params, Recorder(stop_after=1), world.recipe
        )


LOREUN = sorted(n for n, c in METHODS.items() if issubclass(c.Params, ForgetLossParams))


@pytest.mark.parametrize("name", LOREUN)
def test_loreun_runs_and_still_forgets(name: str, request: pytest.FixtureRequest) -> None:
    scope = "sample_ids" if "sample_ids" in METHODS[name].scopes else "labels"
    world = world_for(scope, request)
    result = run(world, name, loreun=True, loreun_temperature=0.5)
    limit = CLASSWISE_FORGET_MAX if scope == "labels" else RANDOM_FORGET_MAX
    assert accuracy(world, result.state_dict, "forget") <= limit
    assert all(torch.isfinite(v.float()).all() for v in result.state_dict.values())


def test_loreun_weights_favour_low_loss() -> None:
    losses = torch.tensor([0.1, 1.0, 3.0])
    w = loreun_weights(losses, temperature=1.0)
    assert torch.isclose(w.mean(), torch.tensor(1.0))
    assert w[0] > w[1] > w[2]
    # T -> large gives uniform weights (plain mean).
    assert torch.allclose(loreun_weights(losses, 1e6), torch.ones(3), atol=1e-4)


def test_retain_floor_stops_a_destructive_run(random_world: World) -> None:
    with pytest.raises(UnlearningDiverged, match="floor"):
        run(
            random_world,
            "gradient_ascent",
            lr=5.0,
            epochs=20,
            retain_accuracy_floor=0.9,
            probe_every_steps=1,
        )


def test_retrain_requires_the_recipe(random_world: World) -> None:
    from workers.engine.errors import EngineError

    with pytest.raises(EngineError, match="recipe"):
        get_method("retrain").run(
            random_world.arch, random_world.state_dict, random_world.data, {"device": "cpu"}
        )


CONV = ArchitectureConfig(
    name="small_cnn",
    num_classes=4,
    input_size=(8, 8),
    width=4,
    normalize_mean=[0.5],
    normalize_std=[0.25],
)


@pytest.fixture(scope="module")
def conv_world(classwise_world: World) -> World:
    """An untrained BatchNorm CNN on the class-wise data: checks mechanics, not forgetting."""
    torch.manual_seed(0)
    weights = {k: v.clone() for k, v in build_network(CONV).state_dict().items()}
    recipe = classwise_world.recipe.model_copy(update={"epochs": 1})
    return World(CONV, recipe, weights, classwise_world.data)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_runs_on_a_batchnorm_cnn(name: str, conv_world: World) -> None:
    params = {**FAST[name]["labels"], "device": "cpu"}
    if "epochs" in METHODS[name].Params.model_fields and name != "retrain":
        params["epochs"] = 1
    result = get_method(name).run(
        conv_world.arch, conv_world.state_dict, conv_world.data, params, None, conv_world.recipe
    )
    expected = {k: v.shape for k, v in conv_world.state_dict.items()}
    assert {k: v.shape for k, v in result.state_dict.items()} == expected
    assert all(torch.isfinite(v.float()).all() for v in result.state_dict.values())
    build_network(CONV).load_state_dict(result.state_dict)  # strict


# Bring-your-own architectures (1-channel input: the stem is rebuilt; 4-class head).
ZOO = {
    "torchvision": ArchitectureConfig(
        name="torchvision", model="mobilenet_v3_small", num_classes=4, input_size=(16, 16)
    ),
    "timm": ArchitectureConfig(
        name="timm", model="test_resnet", num_classes=4, input_size=(16, 16)
    ),
}


@pytest.fixture(scope="module")
def zoo_data(classwise_world: World) -> UnlearnData:
    """A few samples of the class-wise data: per-layer mechanics, not forgetting quality."""
    data = classwise_world.data

    def head(arrays: Any, n: int) -> Any:
        return arrays.subset(np.arange(len(arrays.labels)) < n)

    return UnlearnData(
        forget=head(data.forget, 16),
        retain=head(data.retain, 48),
        test=head(data.test, 32),
        forget_labels=data.forget_labels,
    )


@pytest.mark.parametrize("library", sorted(ZOO))
@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_runs_on_a_library_model(
    name: str, library: str, zoo_data: UnlearnData, classwise_world: World
) -> None:
    """Every method runs on a torchvision and a timm model and keeps its state dict shape."""
    arch = ZOO[library]
    torch.manual_seed(0)
    weights = {k: v.clone() for k, v in build_network(arch).state_dict().items()}
    recipe = classwise_world.recipe.model_copy(update={"epochs": 1, "batch_size": 16})
    params = {**FAST[name]["labels"], "device": "cpu"}
    if "epochs" in METHODS[name].Params.model_fields and name != "retrain":
        params["epochs"] = 1
    result = get_method(name).run(arch, weights, zoo_data, params, None, recipe)
    assert {k: v.shape for k, v in result.state_dict.items()} == {
        k: v.shape for k, v in weights.items()
    }
    assert all(torch.isfinite(v.float()).all() for v in result.state_dict.values())
    changed = [k for k, v in result.state_dict.items() if not torch.equal(v, weights[k])]
    assert changed, f"{name} left every weight of the {library} model untouched"
    build_network(arch).load_state_dict(result.state_dict)  # strict


def test_shadow_neuron_round_trip_keeps_other_classes() -> None:
    from workers.engine.unlearning.boundary_expanding import set_head_outputs

    arch = ArchitectureConfig(name="mnist_cnn", num_classes=10)  # head is fc_layers.2
    net = build_network(arch)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    set_head_outputs(net, 11)
    assert net.head.out_features == 11
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 11)
    set_head_outputs(net, 10)
    after = net.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_relearn_resistance_and_features(random_world: World) -> None:
    from workers.engine.unlearning.probes import penultimate_features, relearn_resistance

    world = random_world
    out = relearn_resistance(world.arch, world.state_dict, world.data.forget, steps=3, lr=0.01)
    assert out["forget_accuracy_before"] == pytest.approx(1.0)
    assert 0.0 <= out["forget_accuracy_after"] <= 1.0
    assert out["relearn_samples"] == 16
    retrained = run(world, "retrain")
    relearned = relearn_resistance(
        world.arch, retrained.state_dict, world.data.forget, steps=3, lr=0.01
    )
    # A model that never saw the mislabelled samples does not recall the held-out ones.
    assert relearned["forget_accuracy_before"] <= 0.2
    feats = penultimate_features(world.arch, world.state_dict, world.data.test)
    assert feats.shape == (len(world.data.test), 64)
