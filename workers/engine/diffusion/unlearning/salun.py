"""SalUn for diffusion: saliency-masked random-label remapping (Fan et al.).

1. Saliency: the gradient of the denoising loss on the erased class's images, at the
   parent's weights; the ``mask_fraction`` of entries with the largest magnitude (one
   global threshold over all tensors) may change, the rest stay exactly as they were.
2. Remapping: asked for the erased class on its own noised images, predict what the
   model predicts for a random *other* class (stop-gradient), plus ``retain_weight``
   times the ordinary denoising loss on the other classes.
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
    from diffusers import UNet2DModel

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.diffusion.unlearning.common import Images
    from workers.engine.training import Callbacks


@register_diffusion_method
class DiffusionSalUn(DiffusionUnlearningMethod):
    """Gradient-saliency mask, then remap the erased class onto random other classes."""

    spec = specs.SALUN

    def unlearn(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: DiffusionTrainParams | None,
    ) -> DiffusionUnlearnResult:
        import torch
        import torch.nn.functional as F

        from workers.engine.diffusion.models import predict_noise
        from workers.engine.diffusion.unlearning import common as C

        assert data.forget is not None and data.retain is not None
        unet, names, optimizer, device = C.prepare(arch, state_dict, params, "full")
        forget, retain = (
            C.Images.of(data.forget, arch, device),
            C.Images.of(data.retain, arch, device),
        )
        mask = saliency_mask(unet, arch, forget, params)
        trained = [n for n in names if bool(mask[n].any())]
        kept = sum(int(m.sum()) for m in mask.values())
        size = sum(m.numel() for m in mask.values())
        callbacks.on_log(f"salun: {kept}/{size} weights salient ({kept / size:.1%})")
        allowed = C.retained_classes(arch, data)
        parameters = dict(unet.named_parameters())

        def loss_fn(g: torch.Generator) -> dict[str, torch.Tensor]:
            x0, y = forget.draw(params.batch_size, g)
            x_t, t, _ = C.noisy(arch, x0, g)
            with torch.no_grad():
                target = predict_noise(unet, x_t, t, C.other_labels(y, allowed, g))
            terms = {"remap_loss": F.mse_loss(predict_noise(unet, x_t, t, y), target)}
            if params.retain_weight > 0:
                retain_loss = C.denoising_mse(unet, arch, *retain.draw(params.batch_size, g), g)
                terms["retain_loss"] = params.retain_weight * retain_loss
            return terms

        def apply_mask() -> None:
            for name, p in parameters.items():
                if p.grad is not None:
                    p.grad.mul_(mask[name])

        guard = C.optimize(
            self.name, params.steps, params.seed, optimizer, callbacks, loss_fn, apply_mask
        )
        return C.finish(
            self.name,
            arch,
            state_dict,
            unet,
            trained,
            data,
            params,
            guard,
            extra={"salient_fraction": kept / size},
        )


def saliency_mask(
    unet: UNet2DModel, arch: DiffusionArchitecture, forget: Images, params: Any
) -> dict[str, torch.Tensor]:
    """1 for the ``mask_fraction`` of entries with the largest |grad of the forget loss|.

    The gradient is of the loss summed over every forget image (``saliency_draws`` noise
    draws each, from a fixed generator), at the parent's weights, before any step.
    """
    import torch
    import torch.nn.functional as F

    from workers.engine.diffusion.models import predict_noise
    from workers.engine.diffusion.unlearning import common as C

    unet.zero_grad(set_to_none=True)
    g = C.step_generator(params.seed, -1)
    for _ in range(params.saliency_draws):
        for start in range(0, len(forget), params.batch_size):
            x0 = forget.x0[start : start + params.batch_size]
            y = forget.labels[start : start + params.batch_size]
            x_t, t, noise = C.noisy(arch, x0, g)
            F.mse_loss(predict_noise(unet, x_t, t, y), noise, reduction="sum").backward()
    named = list(unet.named_parameters())
    grads = {
        n: (p.grad.detach().abs() if p.grad is not None else torch.zeros_like(p)) for n, p in named
    }
    unet.zero_grad(set_to_none=True)
    flat = torch.cat([v.flatten() for v in grads.values()])
    k = max(1, int(round(params.mask_fraction * flat.numel())))
    # Exactly the top k entries: a ">= k-th value" threshold would sweep in every tie.
    chosen = torch.zeros_like(flat)
    chosen[torch.topk(flat, k, sorted=False).indices] = 1.0
    mask, start = {}, 0
    for n, v in grads.items():
        mask[n] = chosen[start : start + v.numel()].view_as(v)
        start += v.numel()
    return mask
