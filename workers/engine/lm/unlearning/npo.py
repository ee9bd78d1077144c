"""Negative Preference Optimization (NPO): DPO with only a losing answer.

The forget loss ``2/beta * log(1 + (pi/pi_ref)^beta)`` pushes the forget answers' log
probability below the reference's (the model before unlearning) but, unlike gradient
ascent, flattens out once they are well below it: the divergence to a useless model that
GA suffers from is slowed from linear to logarithmic.
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
class NPO(LMUnlearningMethod):
    """Negative preference optimisation on the forget answers against the model before
    unlearning, plus a retain NLL term (NPO+RT)."""

    spec = specs.NPO

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
