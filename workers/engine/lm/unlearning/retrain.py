"""Exact unlearning: fine-tune the base again, on the retain records only.

The runner passes the *base* model the fine-tune started from (not the fine-tune) and the
fine-tune's own recipe (``LMTrainParams``); the result never saw the forget records, as
the lineage (base version + retain samples) shows. It costs a whole fine-tune: the
yardstick every approximate method's cost is compared with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts.methods import causal_lm as specs
from workers.engine.errors import EngineError
from workers.engine.lm.unlearning.base import (
    LMUnlearnData,
    LMUnlearningMethod,
    LMUnlearnResult,
    register_lm_method,
)

if TYPE_CHECKING:
    from workers.engine.training import Callbacks


class RecipeMissing(EngineError):
    """``retrain`` was given no fine-tune recipe to replay."""


@register_lm_method
class LMRetrain(LMUnlearningMethod):
    """Fine-tune the base model again on the retain records only, with the original
    fine-tune's recipe (exact)."""

    spec = specs.RETRAIN

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
        import time

        from contracts.causal_lm import LMTrainParams
        from workers.engine.lm.training import finetune

        if train_params is None:
            raise RecipeMissing(
                "retrain needs the fine-tune's recipe (LMTrainParams) and its base model; "
                "a model without lineage can only be unlearned approximately"
            )
        recipe = (
            train_params
            if isinstance(train_params, LMTrainParams)
            else LMTrainParams.model_validate(train_params)
        )
        if params.device is not None:
            device = params.device
            if device == "auto":
                import torch

                device = "cuda" if torch.cuda.is_available() else "cpu"
            recipe = recipe.model_copy(update={"device": device})
        started = time.monotonic()
        message = (
            f"retrain: fine-tuning the base again on {len(data.retain)} retain records "
            f"({len(data.forget)} forgotten), {recipe.epochs} epoch(s)"
        )
        callbacks.on_log(message)
        result = finetune(model, tokenizer, data.retain, recipe, callbacks)
        # A LoRA recipe gives a LoRA model, as the fine-tune did: the runner stores the
        # adapter on the base, the same lineage shape as the original.
        trained = result.model
        metrics = {f"train_{k}": float(v) for k, v in result.metrics.items()}
        metrics["seconds"] = time.monotonic() - started
        return LMUnlearnResult(trained, metrics, [message])
