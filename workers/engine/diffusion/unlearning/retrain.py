"""Retrain: train a new DDPM from scratch without the erased classes.

The exact reference: by construction the result never saw an image of the erased
classes. Its erased-class embedding rows keep their random initialisation, so asking
for such a class gives whatever an untrained label produces; the judge's forget rate
of this model is the floor the approximate methods are compared against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field

from workers.engine.diffusion.unlearning.base import (
    DiffusionMethodParams,
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


# Families a retrain job applies to. ``DiffusionRetrain.unlearn`` is the ddpm path; on
# text2image the job trains a new text2image model on the retained samples
# (``workers.jobs.prompted.run_retrain_text2image``) with these same params. Kept apart
# from ``families``, which lists where the engine's erasure methods themselves run.
RETRAIN_FAMILIES: tuple[str, ...] = ("ddpm", "text2image")


class DiffusionRetrainParams(DiffusionMethodParams):
    train_steps: int | None = Field(
        None,
        ge=1,
        le=2_000_000,
        description="Override the recipe's steps (a cheaper reference); empty: the recipe's.",
    )
    use_recipe_seed: bool = Field(
        True, description="Use the original recipe's seed (true) or this method's seed."
    )


@register_diffusion_method
class DiffusionRetrain(DiffusionUnlearningMethod):
    """Retrain from scratch on the retained classes with the original recipe."""

    name = "retrain"
    exact = True
    paper = (
        "Exact unlearning by retraining; the reference of Bourtoule et al., 'Machine "
        "Unlearning', IEEE S&P 2021, arXiv:1912.03817, and of every erasure benchmark"
    )
    needs_retain_images = True
    Params = DiffusionRetrainParams

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
