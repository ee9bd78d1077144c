"""Gradient difference: gradient ascent on the forget answers, descent on retain ones.

The retain term is what GA lacks: each step also fits a batch of retain records, so the
model keeps what it should know while the forget answers are pushed away.
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
class GradDiff(LMUnlearningMethod):
    """Ascend the forget answers' NLL while descending the retain answers' NLL."""

    spec = specs.GRAD_DIFF

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

        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks)
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            forget_nll = C.nll(run.model, C.rows(run.forget, index, run.device))
            loss = -forget_nll
            parts = {"forget_nll": float(forget_nll.detach())}
            if params.retain_weight > 0:
                retain_nll = C.nll(run.model, retain.next())
                loss = loss + params.retain_weight * retain_nll
                parts["retain_nll"] = float(retain_nll.detach())
            return loss, parts

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
