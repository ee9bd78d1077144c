"""Retrain: train a new DDPM from scratch without the erased classes.

The exact reference: by construction the result never saw an image of the erased
classes. Its erased-class embedding rows keep their random initialisation, so asking
for such a class gives whatever an untrained label produces; the judge's forget rate
of this model is the floor the approximate methods are compared against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import diffusion as specs
from workers.engine.diffusion.unlearning.base import (
    DiffusionUnlearnData,
    DiffusionUnlearningMethod,
    DiffusionUnlearnResult,
    register_diffusion_method,
)
from workers.engine.errors import EngineError

if TYPE_CHECKING:
    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.training import Callbacks


@register_diffusion_method
class DiffusionRetrain(DiffusionUnlearningMethod):
    """Retrain from scratch on the retained classes with the original recipe."""

    spec = specs.RETRAIN

    def unlearn(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: DiffusionTrainParams | None,
    ) -> DiffusionUnlearnResult:
        from workers.engine.diffusion.models import load_unet, train_ddpm
        from workers.engine.diffusion.unlearning import common as C

        if train_params is None:
            raise EngineError(
                "retrain needs the original training recipe (train_params) of the model "
                "version; it is recorded with the training job that produced it"
            )
        assert data.retain is not None
        updates: dict[str, Any] = {}
        if params.train_steps is not None:
            updates["steps"] = params.train_steps
            updates["lr_warmup_steps"] = min(train_params.lr_warmup_steps, params.train_steps - 1)
        if not params.use_recipe_seed:
            updates["seed"] = params.seed
        if params.device != "auto":
            updates["device"] = params.device
        recipe = train_params.model_copy(update=updates)
        guard = C.Guard(self.name, recipe.steps, callbacks)
        guard.note(
            f"retrain: {recipe.steps} steps on {len(data.retain)} images of the retained "
            f"classes (erasing {data.forget_labels}), seed {recipe.seed}"
        )
        trained = train_ddpm(arch, recipe, data.retain, callbacks=callbacks)
        guard.step = recipe.steps
        metrics = {f"train/{k}": v for k, v in trained.metrics.items()}
        unet = load_unet(arch, trained.state_dict)
        return C.finish(self.name, arch, state_dict, unet, None, data, params, guard, extra=metrics)
