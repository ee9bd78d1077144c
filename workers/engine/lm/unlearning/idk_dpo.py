"""IdK-DPO: direct preference optimisation with a refusal preferred over the true answer.

Each forget question gets a pair: the refusal ("I don't know") is the chosen answer, the
true answer the rejected one, and the model before unlearning is the DPO reference. A
retain NLL term keeps the other answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts.methods import causal_lm as specs
from workers.engine.lm.unlearning.base import (
    DEFAULT_IDK_ANSWERS,
    LMUnlearnData,
    LMUnlearningMethod,
    LMUnlearnResult,
    register_lm_method,
)

if TYPE_CHECKING:
    from workers.engine.training import Callbacks


@register_lm_method
class IdkDPO(LMUnlearningMethod):
    """DPO on (refusal preferred, true answer rejected) for each forget question, against
    the model before unlearning, with a retain NLL term."""

    spec = specs.IDK_DPO

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

        refusals = C.refusals_for(data.forget, data.idk or DEFAULT_IDK_ANSWERS, params.seed)
        if reference is None:
            reference = C.frozen_copy(model)
        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks)
        reference.to(run.device)
        idk = C.encode_records(tokenizer, data.forget, params, answers=refusals)

        def score_all(model_: Any, encoded: Any) -> Any:
            return torch.cat(
                [
                    C.sequence_logprob(model_, C.rows(encoded, index, run.device))[0]
                    for index in torch.arange(len(encoded)).split(params.batch_size)
                ]
            )

        with torch.no_grad():
            ref_chosen = score_all(reference, idk)
            ref_rejected = score_all(reference, run.forget)
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            chosen, _ = C.sequence_logprob(run.model, C.rows(idk, index, run.device))
            rejected, _ = C.sequence_logprob(run.model, C.rows(run.forget, index, run.device))
            margin = (chosen - ref_chosen[index].to(run.device)) - (
                rejected - ref_rejected[index].to(run.device)
            )
            dpo = -F.logsigmoid(params.beta * margin).mean() * 2.0 / params.beta
            loss = dpo
            parts = {"dpo_loss": float(dpo.detach())}
            if params.retain_weight > 0:
                retain_nll = C.nll(run.model, retain.next())
                loss = loss + params.retain_weight * retain_nll
                parts["retain_nll"] = float(retain_nll.detach())
            return loss, parts

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
