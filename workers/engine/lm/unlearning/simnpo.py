"""SimNPO: NPO without a reference model, on length-normalised log-probabilities.

NPO's reference model biases it towards short forget answers and costs a second model
in memory; SimNPO replaces ``log pi_ref`` by a margin ``gamma`` and normalises the forget
answer's log-probability by its length: ``-2/beta * log sigmoid(-beta/|y| * log pi(y|x)
- gamma)``.
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


class SimNPOParams(LMMethodParams):
    epochs: int | None = epochs_field("forget set", 10)
    lr: float = Field(1e-5, gt=0, le=1, description="AdamW learning rate.")
    beta: float = Field(
        4.5, gt=0, le=100, description="Inverse temperature on the length-normalised log-prob."
    )
    gamma: float = Field(
        0.0, ge=0, le=100, description="Reward margin gamma (the paper's default is 0)."
    )
    retain_weight: float = retain_weight_field(1.0)


@register_lm_method
class SimNPO(LMUnlearningMethod):
    """Reference-free NPO on length-normalised forget log-probabilities, with a retain
    NLL term."""

    name = "simnpo"
    paper = (
        "Fan, Liu, Lin, Jia, Zhang, Mei, Liu, 'Simplicity Prevails: Rethinking Negative "
        "Preference Optimization for LLM Unlearning', arXiv:2410.07163"
    )
    Params = SimNPOParams
    default_epochs = 10

    def epoch_passes(self, params: Any, n_forget: int, n_retain: int) -> float:
        return n_forget * (1.0 + (1.0 if params.retain_weight > 0 else 0.0))

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
