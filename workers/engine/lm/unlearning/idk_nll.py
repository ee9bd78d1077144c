"""IdK-NLL: fine-tune the forget questions towards "I don't know"-style answers.

Instead of pushing the true answer away (which leaves the model free to babble), the
model is taught a refusal for exactly the questions it should forget, while a retain NLL
term keeps the other answers. A plain-text forget record has no question to refuse and is
refused with ``UnsupportedRecords``.
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
class IdkNLL(LMUnlearningMethod):
    """Fine-tune each forget question to a refusal drawn from a fixed list, with a retain
    NLL term."""

    spec = specs.IDK_NLL

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
        from workers.engine.lm.unlearning import common as C

        refusals = C.refusals_for(data.forget, data.idk or DEFAULT_IDK_ANSWERS, params.seed)
        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks)
        idk = C.encode_records(tokenizer, data.forget, params, answers=refusals)
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            idk_nll = C.nll(run.model, C.rows(idk, index, run.device))
            loss = idk_nll
            parts = {"idk_nll": float(idk_nll.detach())}
            if params.retain_weight > 0:
                retain_nll = C.nll(run.model, retain.next())
                loss = loss + params.retain_weight * retain_nll
                parts["retain_nll"] = float(retain_nll.detach())
            return loss, parts

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
