"""UNO: unlearning by orthogonalised forget/retain gradients.

Follows the idea of "UNO: Unlearning via Orthogonalization in Generative models"
(fast unlearning based on loss-gradient orthogonalisation, shown on MNIST and CelebA):
at every step the gradient of the forget loss is projected onto the orthogonal
complement of the gradient of the retain loss, so that, to first order, the step that
erases the class does not change the loss on what is kept. The retain gradient itself
is then added (``retain_weight``) to repair what the projection cannot see.

The forget loss is chosen by ``forget_loss``:

* ``remap`` (default, bounded): asked for the erased class on its own noised images,
  predict what the model currently predicts for a random *other* class (stop-gradient),
  as SalUn remaps; its minimum is a model that draws other classes instead;
* ``ascent``: the negative denoising loss on the erased class's images (the paper's
  gradient-ascent flavour); unbounded, so keep ``steps`` and ``lr`` small.

The projection is global (one dot product over all trainable parameters), which is what
makes it cheap: one extra backward pass per step, unlike per-layer gradient surgery.
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
class UNO(DiffusionUnlearningMethod):
    """Project the forget gradient off the retain gradient, then step on both."""

    spec = specs.UNO

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
        unet, names, optimizer, device = C.prepare(arch, state_dict, params, params.train_method)
        forget, retain = (
            C.Images.of(data.forget, arch, device),
            C.Images.of(data.retain, arch, device),
        )
        allowed = C.retained_classes(arch, data)
        lookup = dict(unet.named_parameters())
        trainable = [lookup[n] for n in names]
        guard = C.Guard(self.name, params.steps, callbacks)
        conflicts = 0

        def forget_term(g: torch.Generator) -> torch.Tensor:
            x0, y = forget.draw(params.batch_size, g)
            if params.forget_loss == "ascent":
                return -C.denoising_mse(unet, arch, x0, y, g)
            x_t, t, _ = C.noisy(arch, x0, g)
            with torch.no_grad():
                target = predict_noise(unet, x_t, t, C.other_labels(y, allowed, g))
            return F.mse_loss(predict_noise(unet, x_t, t, y), target)

        for step in range(params.steps):
            guard.before()
            g = C.step_generator(params.seed, step)
            forget_loss = forget_term(g)
            g_forget = torch.autograd.grad(forget_loss, trainable, allow_unused=True)
            retain_loss = C.denoising_mse(unet, arch, *retain.draw(params.batch_size, g), g)
            g_retain = torch.autograd.grad(retain_loss, trainable, allow_unused=True)
            gf = [
                torch.zeros_like(p) if d is None else d
                for p, d in zip(trainable, g_forget, strict=True)
            ]
            gr = [
                torch.zeros_like(p) if d is None else d
                for p, d in zip(trainable, g_retain, strict=True)
            ]
            projected, cosine = project_out(gf, gr)
            conflicts += int(cosine < 0)
            for p, a, b in zip(trainable, projected, gr, strict=True):
                p.grad = a + params.retain_weight * b
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            guard.after(
                forget_loss=float(forget_loss.detach()),
                retain_loss=float(retain_loss.detach()),
                cosine=cosine,
            )
        return C.finish(
            self.name,
            arch,
            state_dict,
            unet,
            names,
            data,
            params,
            guard,
            extra={"conflicting_steps": float(conflicts)},
        )


def project_out(
    forget: list[torch.Tensor], retain: list[torch.Tensor]
) -> tuple[list[torch.Tensor], float]:
    """``forget`` minus its component along ``retain`` (both one vector over all tensors),
    and the cosine between them before the projection (< 0: the two losses conflict).

    The result is orthogonal to ``retain``: a small step along it leaves the retain loss
    unchanged to first order. A zero retain gradient leaves ``forget`` as it is.
    """
    dot = sum(float((a * b).sum()) for a, b in zip(forget, retain, strict=True))
    retain_sq = sum(float((b * b).sum()) for b in retain)
    forget_sq = sum(float((a * a).sum()) for a in forget)
    if retain_sq == 0.0:
        return list(forget), 0.0
    coef = dot / retain_sq
    cosine = dot / ((retain_sq * forget_sq) ** 0.5 + 1e-30)
    return [a - coef * b for a, b in zip(forget, retain, strict=True)], cosine
