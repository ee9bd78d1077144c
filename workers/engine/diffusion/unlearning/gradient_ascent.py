"""Gradient ascent with a retain term: the baseline every erasure paper compares with.

Maximise the denoising loss of the erased class's real images under their own label
while minimising it on the other classes (SalUn's and the UnlearnCanvas "GA" baseline).
Unbounded by design: with too many steps or too high a rate it destroys the model,
which is exactly what the comparison is meant to show.
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

if TYPE_CHECKING:
    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.training import Callbacks


@register_diffusion_method
class GradientAscent(DiffusionUnlearningMethod):
    """Ascend the denoising loss on the erased class, descend it on the others."""

    spec = specs.GRADIENT_ASCENT

    def unlearn(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: DiffusionTrainParams | None,
    ) -> DiffusionUnlearnResult:
        from workers.engine.diffusion.unlearning import common as C

        assert data.forget is not None and data.retain is not None
        unet, trained, optimizer, device = C.prepare(arch, state_dict, params, "full")
        forget, retain = (
            C.Images.of(data.forget, arch, device),
            C.Images.of(data.retain, arch, device),
        )

        def loss_fn(g: torch.Generator) -> dict[str, torch.Tensor]:
            forget_loss = C.denoising_mse(unet, arch, *forget.draw(params.batch_size, g), g)
            retain_loss = C.denoising_mse(unet, arch, *retain.draw(params.batch_size, g), g)
            return {
                "forget_ascent": -forget_loss,
                "retain_loss": params.retain_weight * retain_loss,
            }

        guard = C.optimize(self.name, params.steps, params.seed, optimizer, callbacks, loss_fn)
        return C.finish(self.name, arch, state_dict, unet, trained, data, params, guard)
