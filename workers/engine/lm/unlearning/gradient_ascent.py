"""Gradient ascent: maximise the NLL of the forget answers.

The simplest LLM unlearning baseline and the least stable one: nothing holds the rest of
the model in place and the loss is unbounded, so a short budget and
``retain_loss_ceiling`` are what keep it from wrecking the model.
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
class GradientAscent(LMUnlearningMethod):
    """Maximise the next-token NLL of the forget answers (GA)."""

    spec = specs.GRADIENT_ASCENT

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

        def loss_fn(index: Any) -> tuple[Any, dict[str, float]]:
            forget_nll = C.nll(run.model, C.rows(run.forget, index, run.device))
            return -forget_nll, {"forget_nll": float(forget_nll.detach())}

        C.forget_walk(run, params, epochs, loss_fn, self.name)
        model, metrics = C.finish(run, params)
        return LMUnlearnResult(model, metrics, run.guard.log)
