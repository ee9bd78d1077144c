"""Retrain: train from scratch on the retain set with the original recipe.

The only exact method in the registry: the result is, by construction, a model that
never saw the forgotten samples. It is the reference the approximate methods are
measured against (Avg. Gap), and what a deletion request falls back to when no
approximate method passes its verification thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import classifier as specs
from workers.engine.errors import EngineError
from workers.engine.unlearning.base import (
    UnlearnData,
    UnlearningMethod,
    UnlearnResult,
    register,
)

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.training import Callbacks


@register
class Retrain(UnlearningMethod):
    """Retrain from scratch on the retain set with the original training recipe."""

    spec = specs.RETRAIN

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        from workers.engine.evaluation import evaluate_network
        from workers.engine.nets import build_network
        from workers.engine.training import train_classifier

        if train_params is None:
            raise EngineError(
                "retrain needs the original training recipe (train_params) of the model "
                "version; it is recorded with the training job that produced it"
            )
        updates: dict[str, Any] = {}
        if params.epochs is not None:
            updates["epochs"] = params.epochs
        if not params.use_recipe_seed:
            updates["seed"] = params.seed
        if params.device != "auto":
            updates["device"] = params.device
        recipe = train_params.model_copy(update=updates)
        log = [
            f"retrain: {recipe.epochs} epoch(s) on {len(data.retain)} retain samples "
            f"(forgetting {len(data.forget)}), seed {recipe.seed}"
        ]
        callbacks.on_log(log[0])
        trained = train_classifier(arch, recipe, data.retain, test=data.test, callbacks=callbacks)
        net = build_network(arch)
        net.load_state_dict(trained.state_dict)
        forget = evaluate_network(net, data.forget, arch, recipe.batch_size, "cpu")
        metrics = {f"train/{k}": v for k, v in trained.metrics.items()}
        metrics["forget_accuracy"] = float(forget["accuracy"])
        return UnlearnResult(trained.state_dict, metrics, log)
