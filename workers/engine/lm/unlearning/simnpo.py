"""SimNPO: NPO without a reference model, on length-normalised log-probabilities.

NPO's reference model biases it towards short forget answers and costs a second model
in memory; SimNPO replaces ``log pi_ref`` by a margin ``gamma`` and normalises the forget
answer's log-probability by its length: ``-2/beta * log sigmoid(-beta/|y| * log pi(y|x)
- gamma)``.
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
class SimNPO(LMUnlearningMethod):
    """Reference-free NPO on length-normalised forget log-probabilities, with a retain
    NLL term."""

    spec = specs.SIMNPO

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
        import torch.nn.functional as F

        from workers.engine.lm.unlearning import common as C

        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks)
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            logp, count = C.sequence_logprob(run.model, C.rows(run.forget, index, run.device))
            reward = -params.beta * logp / count - params.gamma
            forget_loss = -F.logsigmoid(reward).mean() * 2.0 / params.beta
            loss = forget_loss
            parts = {"simnpo_loss": float(forget_loss.detach())}
            if params.retain_weight > 0:
                retain_nll = C.nll(run.model, retain.next())
                loss = loss + params.retain_weight * retain_nll
                parts["retain_nll"] = float(retain_nll.detach())
            return loss, parts

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
