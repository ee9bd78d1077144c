"""ESD: Erased Stable Diffusion, negative-guidance fine-tuning (Gandikota et al.).

The frozen parent defines where the erased class should go: its unconditional
prediction pushed *away* from the class, eps_null - eta * (eps_class - eps_null), the
negative of the classifier-free-guidance direction. The trained copy learns to give that
when asked for the class, so sampling the class is steered away from it.

Data-free: like the reference code, the states x_t are the frozen model's own guided
DDIM samples of the erased class, stopped at a random step. The reference runs a new
partial trajectory every iteration; because the teacher is frozen, recording a pool of
full trajectories once and drawing random (trajectory, step) pairs samples the same
distribution at a fraction of the cost, and the recorded guidance passes already hold
eps_class and eps_null, so the teacher never runs again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import diffusion as specs
from workers.engine.diffusion.unlearning.base import (
    ConceptUnlearnData,
    DiffusionUnlearnData,
    DiffusionUnlearningMethod,
    DiffusionUnlearnResult,
    register_diffusion_method,
)

if TYPE_CHECKING:
    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.training import Callbacks


@register_diffusion_method
class ESD(DiffusionUnlearningMethod):
    """Negative-guidance fine-tuning: asked for the class, predict the frozen model's
    unconditional noise pushed away from the class."""

    spec = specs.ESD

    def unlearn(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: DiffusionTrainParams | None,
    ) -> DiffusionUnlearnResult:
        import torch.nn.functional as F

        from workers.engine.diffusion.models import predict_noise
        from workers.engine.diffusion.unlearning import common as C

        unet, trained, optimizer, device = C.prepare(arch, state_dict, params, params.train_method)
        labels = [c for c in data.forget_labels for _ in range(params.trajectories)]
        pool = C.record_trajectories(
            C.frozen_copy(unet),
            arch,
            labels,
            params.seed,
            params.guidance_scale,
            params.ddim_steps,
            device,
        )
        eta = params.negative_guidance

        def loss_fn(g: torch.Generator) -> dict[str, torch.Tensor]:
            x_t, t, y, eps_cond, eps_uncond = pool.draw(params.batch_size, g)
            target = eps_uncond - eta * (eps_cond - eps_uncond)
            return {"esd_loss": F.mse_loss(predict_noise(unet, x_t, t, y), target)}

        callbacks.on_log(
            f"esd: {len(trained)} tensors train ({params.train_method}); "
            f"{len(labels)} recorded trajectories x {params.ddim_steps} states"
        )
        guard = C.optimize(self.name, params.steps, params.seed, optimizer, callbacks, loss_fn)
        return C.finish(self.name, arch, state_dict, unet, trained, data, params, guard)

    def unlearn_concepts(
        self, model: Any, data: ConceptUnlearnData, params: Any, callbacks: Callbacks
    ) -> DiffusionUnlearnResult:
        """The paper's own setting: the erased prompts' states from the frozen model's
        guided DDIM runs, the target eps_uncond - eta (eps_prompt - eps_uncond), the
        subset over real cross-attention (xattn = ESD-x, noxattn = ESD-u). The anchor
        and preserved prompts are not used by the loss (ESD has no preservation term);
        the preserved prompts' epsilon shift is reported."""
        import torch.nn.functional as F

        from workers.engine.diffusion.unlearning import common as C
        from workers.engine.diffusion.unlearning import prompt_common as P

        unet, trained, optimizer = P.trainable_copy(model, params, params.train_method)
        pool = P.record_prompt_trajectories(
            model,
            data.prompts,
            params.trajectories,
            params.seed,
            params.guidance_scale,
            params.ddim_steps,
        )
        contexts = model.encode(data.prompts)
        eta = params.negative_guidance

        def loss_fn(g: torch.Generator) -> dict[str, torch.Tensor]:
            x_t, t, idx, eps_cond, eps_uncond = pool.draw(params.batch_size, g, model.device)
            target = eps_uncond - eta * (eps_cond - eps_uncond)
            pred = unet(x_t, t, encoder_hidden_states=contexts[idx]).sample
            return {"esd_loss": F.mse_loss(pred, target)}

        callbacks.on_log(
            f"esd: {len(trained)} tensors train ({params.train_method}); "
            f"{len(pool.t)} recorded states of {len(data.prompts)} prompt(s)"
        )
        guard = C.optimize(self.name, params.steps, params.seed, optimizer, callbacks, loss_fn)
        return P.finish_prompt(self.name, model, unet, trained, data, params, guard)
