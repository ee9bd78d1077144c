"""Gradient ascent: maximise the NLL of the forget answers.

The simplest LLM unlearning baseline and the least stable one: nothing holds the rest of
the model in place and the loss is unbounded, so a short budget and
``retain_loss_ceiling`` are what keep it from wrecking the model.
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
)

if TYPE_CHECKING:
    from workers.engine.training import Callbacks


class GradientAscentParams(LMMethodParams):
    epochs: int | None = epochs_field("forget set", 5)
    lr: float = Field(1e-5, gt=0, le=1, description="AdamW learning rate.")


@register_lm_method
class GradientAscent(LMUnlearningMethod):
    """Maximise the next-token NLL of the forget answers (GA)."""

    name = "gradient_ascent"
    paper = (
        "Jang et al., 'Knowledge Unlearning for Mitigating Privacy Risks in Language "
        "Models', ACL 2023, arXiv:2210.01504; the GA baseline of Maini et al., 'TOFU: A "
        "Task of Fictitious Unlearning for LLMs', arXiv:2401.06121"
    )
    Params = GradientAscentParams
    default_epochs = 5

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
