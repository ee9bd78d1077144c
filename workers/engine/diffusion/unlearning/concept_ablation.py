"""Concept Ablation, model-based variant (Kumari et al.): redirect a class onto an anchor.

Given images of the anchor class, noised to random timesteps, the trained copy must
predict under the *erased* label what the frozen parent predicts under the *anchor*
label; asked for the erased class, the model then draws the anchor's distribution. A
standard denoising loss on the anchor images under the anchor label keeps the anchor
itself intact (the paper's regulariser). As in the paper, the anchor images are by
default the parent's own samples of the anchor class, so no training data is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from workers.engine.diffusion.unlearning.base import (
    ConceptUnlearnData,
    DiffusionMethodParams,
    DiffusionUnlearnData,
    DiffusionUnlearningMethod,
    DiffusionUnlearnResult,
    PromptSubset,
    TrainableSubset,
    register_diffusion_method,
)
from workers.engine.errors import EngineError

if TYPE_CHECKING:
    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.training import Callbacks


class ConceptAblationParams(DiffusionMethodParams):
    anchor_label: int = Field(ge=0, description="The class the erased classes are mapped onto.")
    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    train_method: TrainableSubset = Field(
        "xattn",
        description=(
            "Which parameters train: xattn (the layers that read the class, the analogue of "
            "the paper's cross-attention K/V), noxattn, or full."
        ),
    )
    anchor_source: Literal["generated", "real"] = Field(
        "generated",
        description=(
            "generated: the parent's own samples of the anchor (paper); real: retain-set "
            "images of the anchor class."
        ),
    )
    anchor_images: int = Field(
        64, ge=1, le=100_000, description="How many anchor samples to generate."
    )
    ddim_steps: int = Field(50, ge=2, le=1000, description="DDIM steps of generated anchors.")
    guidance_scale: float = Field(3.0, ge=0, le=50, description="Guidance of generated anchors.")
    anchor_loss_weight: float = Field(
        1.0, ge=0, le=1000, description="Weight of the denoising loss that keeps the anchor."
    )


class ConceptAblationPromptParams(DiffusionMethodParams):
    """On prompt families the anchor is the concept scope's anchor prompt."""

    lr: float = Field(1e-4, gt=0, le=1, description="Adam learning rate.")
    steps: int = Field(400, ge=1, le=1_000_000, description="Optimizer steps.")
    train_method: PromptSubset = Field(
        "kv",
        description=(
            "Which parameters train: kv (the cross-attention key/value projections, the "
            "paper's default), xattn (all cross-attention layers), noxattn, or full."
        ),
    )
    anchor_images: int = Field(
        64, ge=1, le=100_000, description="How many anchor-prompt samples to generate."
    )
    ddim_steps: int = Field(50, ge=2, le=1000, description="DDIM steps of those samples.")
    guidance_scale: float = Field(3.0, ge=0, le=50, description="Guidance of those samples.")
    anchor_loss_weight: float = Field(
        1.0, ge=0, le=1000, description="Weight of the denoising loss that keeps the anchor."
    )


@register_diffusion_method
class ConceptAblation(DiffusionUnlearningMethod):
    """Map each erased class onto an anchor class: under the erased label, predict what
    the frozen model predicts for the anchor."""

    name = "concept_ablation"
    families = ("ddpm", "text2image", "stable_diffusion")
    paper = (
        "Kumari et al., 'Ablating Concepts in Text-to-Image Diffusion Models', ICCV 2023, "
        "arXiv:2303.13516, https://www.cs.cmu.edu/~concept-ablation/"
    )
    Params = ConceptAblationParams
    ConceptParams = ConceptAblationPromptParams

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

        anchor = params.anchor_label
        if not 0 <= anchor < arch.num_classes:
            raise EngineError(
                f"anchor_label {anchor} is not a class of the model (0..{arch.num_classes - 1})"
            )
        if anchor in data.forget_labels:
            raise EngineError(f"anchor_label {anchor} is one of the erased classes")
        unet, trained, optimizer, device = C.prepare(arch, state_dict, params, params.train_method)
        teacher = C.frozen_copy(unet)
        if params.anchor_source == "real":
            if data.retain is None:
                raise EngineError("anchor_source 'real' needs retain images of the anchor class")
            chosen = data.retain.labels == anchor
            if not chosen.any():
                raise EngineError(f"the retain set has no images of anchor class {anchor}")
            anchors = C.Images.of(data.retain.subset(chosen), arch, device)
        else:
            x0 = C.generated_images(
                teacher,
                arch,
                [anchor] * params.anchor_images,
                params.seed,
                params.guidance_scale,
                params.ddim_steps,
                device,
            )
            anchors = C.Images(x0=x0, labels=torch.full((len(x0),), anchor, device=device))
        erased = torch.as_tensor(data.forget_labels, dtype=torch.long)

        def loss_fn(g: torch.Generator) -> dict[str, torch.Tensor]:
            x0, y_anchor = anchors.draw(params.batch_size, g)
            x_t, t, noise = C.noisy(arch, x0, g)
            y_erased = erased[torch.randint(0, len(erased), (len(x0),), generator=g)].to(device)
            with torch.no_grad():
                target = predict_noise(teacher, x_t, t, y_anchor)
            terms = {"ablation_loss": F.mse_loss(predict_noise(unet, x_t, t, y_erased), target)}
            if params.anchor_loss_weight > 0:
                keep = F.mse_loss(predict_noise(unet, x_t, t, y_anchor), noise)
                terms["anchor_loss"] = params.anchor_loss_weight * keep
            return terms

        callbacks.on_log(
            f"concept_ablation: classes {data.forget_labels} -> {anchor}, "
            f"{len(anchors)} {params.anchor_source} anchor images, {len(trained)} tensors train"
        )
        guard = C.optimize(self.name, params.steps, params.seed, optimizer, callbacks, loss_fn)
        return C.finish(self.name, arch, state_dict, unet, trained, data, params, guard)

    def unlearn_concepts(
        self, model: Any, data: ConceptUnlearnData, params: Any, callbacks: Callbacks
    ) -> DiffusionUnlearnResult:
        """The paper's model-based variant with prompts: on noised samples of the anchor
        prompt (generated by the frozen model), the erased prompts must predict what the
        frozen model predicts for the anchor; plus the denoising loss on the anchor."""
        import torch
        import torch.nn.functional as F
        from diffusers import DDPMScheduler

        from workers.engine.diffusion.prompted import sample_prompts
        from workers.engine.diffusion.unlearning import common as C
        from workers.engine.diffusion.unlearning import prompt_common as P

        if data.anchor in data.prompts:
            raise EngineError("the anchor prompt is one of the erased prompts")
        unet, trained, optimizer = P.trainable_copy(model, params, params.train_method)
        chunks = []
        for start in range(0, params.anchor_images, 16):
            n = min(16, params.anchor_images - start)
            chunks.append(
                sample_prompts(
                    model,
                    [data.anchor] * n,
                    [""] * n,
                    [params.seed * 7919 + start + i for i in range(n)],
                    params.guidance_scale,
                    params.ddim_steps,
                    "ddim",
                    decode=False,
                )
            )
        x0_pool = torch.cat(chunks).to(model.device)
        schedule = DDPMScheduler.from_config(model.scheduler_config)
        erased_ctx = model.encode(data.prompts)
        anchor_ctx = model.encode([data.anchor])[0]

        def loss_fn(g: torch.Generator) -> dict[str, torch.Tensor]:
            n = params.batch_size
            x0 = x0_pool[torch.randint(0, len(x0_pool), (n,), generator=g).to(model.device)]
            noise = torch.randn(x0.shape, generator=g).to(model.device)
            t = torch.randint(0, model.num_train_timesteps, (n,), generator=g).to(model.device)
            x_t = schedule.add_noise(x0, noise, t)
            which = torch.randint(0, len(data.prompts), (n,), generator=g).to(model.device)
            anchor = anchor_ctx.expand(n, *anchor_ctx.shape)
            with torch.no_grad():
                target = model.unet(x_t, t, encoder_hidden_states=anchor).sample
            pred = unet(x_t, t, encoder_hidden_states=erased_ctx[which]).sample
            terms = {"ablation_loss": F.mse_loss(pred, target)}
            if params.anchor_loss_weight > 0:
                keep = F.mse_loss(unet(x_t, t, encoder_hidden_states=anchor).sample, noise)
                terms["anchor_loss"] = params.anchor_loss_weight * keep
            return terms

        callbacks.on_log(
            f"concept_ablation: {data.prompts} -> {data.anchor!r}, {len(x0_pool)} generated "
            f"anchor samples, {len(trained)} tensors train ({params.train_method})"
        )
        guard = C.optimize(self.name, params.steps, params.seed, optimizer, callbacks, loss_fn)
        return P.finish_prompt(self.name, model, unet, trained, data, params, guard)
