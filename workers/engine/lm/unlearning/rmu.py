"""RMU (Representation Misdirection for Unlearning), from the WMDP paper.

On forget text, a middle layer's activations are steered towards a fixed random
direction scaled up (``steering_coeff`` times their usual norm), which scrambles what the
layers above read there; on retain text the same activations are held at the frozen
model's. Only a few layers just below the steered one are updated (their MLPs by
default), so the change is local and cheap.

The paper's steering coefficient is an absolute number tuned per model (6.5 on
Zephyr-7B); here it is relative to the mean activation norm the frozen model has at that
layer on the forget text, so one default fits models of any width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts.methods import causal_lm as specs
from workers.engine.lm.unlearning.base import (
    LMUnlearnData,
    LMUnlearningMethod,
    LMUnlearnResult,
    register_lm_method,
)

if TYPE_CHECKING:
    from workers.engine.training import Callbacks


@register_lm_method
class RMU(LMUnlearningMethod):
    """Steer a middle layer's forget activations to a scaled random vector while holding
    retain activations at the frozen model's; only a few layers are updated."""

    spec = specs.RMU

    def unlearn(
        self,
        model: Any,
        tokenizer: Any,
        data: LMUnlearnData,
        params: Any,
        callbacks: Callbacks,
        reference: Any | None = None,
        train_params: Any | None = None,
    ) -> LMUnlearnResult:
        import torch

        from workers.engine.lm.unlearning import common as C
        from workers.engine.lm.unlearning.base import InvalidMethodParams

        if reference is None:
            reference = C.frozen_copy(model)
        layers = C.decoder_layers(model)
        layer = params.layer if params.layer is not None else len(layers) // 3
        if layer >= len(layers):
            raise InvalidMethodParams(
                f"invalid params for rmu: layer {layer} does not exist, the model has "
                f"{len(layers)} decoder layers (0..{len(layers) - 1})"
            )
        first = max(0, layer - params.update_depth + 1)
        model.requires_grad_(False)
        trainable: list[Any] = []
        for block in layers[first : layer + 1]:
            mlp = params.update_modules == "mlp" and hasattr(block, "mlp")
            part = block.get_submodule("mlp") if mlp else block
            for p in part.parameters():
                p.requires_grad_(True)
                trainable.append(p)
        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks, trainable=trainable)
        reference.to(run.device)
        ref_layers = C.decoder_layers(reference)
        with torch.no_grad():
            norms = [
                C.layer_output(reference, ref_layers[layer], batch).norm(dim=-1)[mask].mean()
                for batch, mask in (
                    C.answer_positions(C.rows(run.forget, index, run.device))
                    for index in torch.arange(len(run.forget)).split(params.batch_size)
                )
            ]
            scale = float(torch.stack(norms).mean()) * params.steering_coeff
        generator = C.seed_all(params.seed)
        # The paper's control vector: uniform in [0, 1)^d, unit-normalised, then scaled.
        direction = torch.rand(int(model.config.hidden_size), generator=generator)
        control = (direction / direction.norm() * scale).to(run.device)
        run.guard.note(
            f"rmu: steering layer {layer}, updating layers {first}..{layer} "
            f"({params.update_modules}), control norm {scale:.2f}"
        )
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            batch, mask = C.answer_positions(C.rows(run.forget, index, run.device))
            acts = C.layer_output(run.model, layers[layer], batch)[mask]
            forget_loss = ((acts - control) ** 2).mean()
            loss = forget_loss
            parts = {"forget_mse": float(forget_loss.detach())}
            if params.retain_weight > 0:
                r_batch, r_mask = C.answer_positions(retain.next())
                r_acts = C.layer_output(run.model, layers[layer], r_batch)[r_mask]
                with torch.no_grad():
                    frozen = C.layer_output(reference, ref_layers[layer], r_batch)[r_mask]
                retain_loss = ((r_acts - frozen) ** 2).mean()
                loss = loss + params.retain_weight * retain_loss
                parts["retain_mse"] = float(retain_loss.detach())
            return loss, parts

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
