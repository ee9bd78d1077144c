"""Negative Preference Optimization (NPO): DPO with only a losing answer.

The forget loss ``2/beta * log(1 + (pi/pi_ref)^beta)`` pushes the forget answers' log
probability below the reference's (the model before unlearning) but, unlike gradient
ascent, flattens out once they are well below it: the divergence to a useless model that
GA suffers from is slowed from linear to logarithmic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from workers.engine.lm.unlearning.base import (
    LMMethodParams,
    LMUnlearnData,
    LMUnlearningMethod,
    LMUnlearnResult,
    epochs_field,
    register_lm_method,
    retain_weight_field,
)

if TYPE_CHECKING:
    from workers.engine.training import Callbacks


class NPOParams(LMMethodParams):
    epochs: int | None = epochs_field("forget set", 10)
    lr: float = Field(1e-5, gt=0, le=1, description="AdamW learning rate.")
    beta: float = Field(
        0.1, gt=0, le=100, description="Inverse temperature of the NPO loss (the paper's 0.1)."
    )
    retain_weight: float = retain_weight_field(1.0)


@register_lm_method
class NPO(LMUnlearningMethod):
    """Negative preference optimisation on the forget answers against the model before
    unlearning, plus a retain NLL term (NPO+RT)."""

    name = "npo"
    paper = (
        "Zhang, Lin, Bai, Mei, 'Negative Preference Optimization: From Catastrophic "
        "Collapse to Effective Unlearning', COLM 2024, arXiv:2404.05868"
    )
    Params = NPOParams
    default_epochs = 10
    needs_reference = True

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        # The reference is a forward pass only (1/3 of a forward + backward).
        return n_forget * (1.0 + 1.0 / 3.0 + (1.0 if params.retain_weight > 0 else 0.0))

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
        import torch.nn.functional as F

        from workers.engine.lm.unlearning import common as C

        if reference is None:
            reference = C.frozen_copy(model)
        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks)
        reference.to(run.device)
        # The reference never changes: score every forget record once.
        with torch.no_grad():
            ref_logp = torch.cat(
                [
                    C.sequence_logprob(reference, C.rows(run.forget, index, run.device))[0]
                    for index in torch.arange(len(run.forget)).split(params.batch_size)
                ]
            )
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            logp, _ = C.sequence_logprob(run.model, C.rows(run.forget, index, run.device))
            log_ratio = logp - ref_logp[index].to(run.device)
            forget_loss = -F.logsigmoid(-params.beta * log_ratio).mean() * 2.0 / params.beta
            loss = forget_loss
            parts = {"npo_loss": float(forget_loss.detach())}
            if params.retain_weight > 0:
                retain_nll = C.nll(run.model, retain.next())
                loss = loss + params.retain_weight * retain_nll
                parts["retain_nll"] = float(retain_nll.detach())
            return loss, parts

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
