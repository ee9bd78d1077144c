"""MUDMAN: Meta-Unlearning with Disruption Masking And Normalization.

Chosen among the seed papers' LLM methods because it targets what the evaluation's
relearning attack measures (unlearning that a few fine-tuning steps undo), and because it
needs nothing beyond gradients: UnStar needs a strong LLM to write anti-samples, RESTOR
is an evaluation framework, not a method.

Each step, per forget batch:

1. the retain gradient ``g_r`` (retain NLL) is taken at the current weights;
2. meta-learning: an adversary copy of the model relearns the forget batch for
   ``adv_steps`` SGD steps, and the unlearning gradient ``g_u`` (of the negated forget
   NLL) is taken at the adversary's weights, so the update also works against the
   weights a relearning attack would reach (first-order, like MAML's approximation);
3. normalisation: ``g_u`` is divided by its root-mean-square, so every step moves the
   weights by about ``lr`` whatever the loss's scale (gradient ascent's loss grows
   without bound, its gradient with it);
4. disruption masking: only weights where ``g_u`` and ``g_r`` have the same sign move,
   i.e. where the unlearning step does not increase the retain loss, to first order.

Our simplifications, said plainly: the adversary is re-synchronised with the model every
step (no persistent adversary), the unlearning loss is the negated NLL of the forget
answers, and the update is plain SGD on the masked normalised gradient.
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
class Mudman(LMUnlearningMethod):
    """Normalised gradient ascent on the forget answers, taken at a relearning adversary's
    weights and masked to weights where it does not disrupt the retain loss."""

    spec = specs.MUDMAN

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
        import copy

        import torch

        from workers.engine.lm.unlearning import common as C

        epochs = params.epochs or self.default_epochs
        run = C.start(self, model, tokenizer, data, params, callbacks)
        names = [n for n, p in run.model.named_parameters() if p.requires_grad]
        weights = [p for p in run.model.parameters() if p.requires_grad]
        adversary = copy.deepcopy(run.model) if params.adv_steps > 0 else None
        adv_weights = (
            [dict(adversary.named_parameters())[n] for n in names] if adversary else weights
        )
        retain = C.Cycle(run.retain, params.batch_size, params.seed, run.device)

        def grads_of(loss: Any, tensors: list[Any]) -> list[Any]:
            found = torch.autograd.grad(loss, tensors, allow_unused=True)
            return [
                torch.zeros_like(t) if g is None else g for g, t in zip(found, tensors, strict=True)
            ]

        kept_total = 0.0
        if run.stop_here(0):  # stop_at_holdout: already at the never-seen level
            epochs = 0
        for epoch in range(epochs):
            batches = C.epoch_order(len(run.forget), params.batch_size, params.seed + epoch)
            for index in batches:
                run.guard.before()
                forget_batch = C.rows(run.forget, index, run.device)
                g_retain = None
                if params.disruption_mask:
                    retain_nll = C.nll(run.model, retain.next())
                    run.guard.check(retain_nll, "retain_nll")
                    g_retain = grads_of(retain_nll, weights)
                at = run.model
                if adversary is not None:
                    with torch.no_grad():
                        for a, w in zip(adv_weights, weights, strict=True):
                            a.copy_(w)
                    adversary.train()
                    for _ in range(params.adv_steps):
                        relearn = C.nll(adversary, forget_batch)
                        run.guard.check(relearn, "adversary_nll")
                        relearn_grads = grads_of(relearn, adv_weights)
                        with torch.no_grad():
                            for a, g in zip(adv_weights, relearn_grads, strict=True):
                                a.sub_(params.adv_lr * g)
                    at = adversary
                forget_nll = C.nll(at, forget_batch)
                run.guard.check(forget_nll, "forget_nll")
                g_unlearn = grads_of(-forget_nll, adv_weights if at is adversary else weights)
                square = sum(float((g.float() ** 2).sum()) for g in g_unlearn)
                count = sum(g.numel() for g in g_unlearn)
                rms = (square / max(count, 1)) ** 0.5
                if not 0 < rms < float("inf"):
                    step = run.guard.step + 1
                    raise C.LMUnlearningDiverged(
                        f"{self.name}: the unlearning gradient's RMS is {rms} at step {step}",
                        step=step,
                    )
                kept = 0
                with torch.no_grad():
                    for i, (w, g) in enumerate(zip(weights, g_unlearn, strict=True)):
                        update = g / rms
                        if g_retain is not None:
                            agree = torch.sign(g) == torch.sign(g_retain[i])
                            update = update * agree
                            kept += int(agree.sum())
                        else:
                            kept += g.numel()
                        w.sub_(params.lr * update)
                kept_total += kept / max(count, 1)
                run.guard.after(-forget_nll.detach())
            run.guard.note(f"{self.name}: epoch {epoch + 1}/{epochs} done")
            if run.stop_here(epoch + 1):
                break
        model, metrics = C.finish(run, params)
        metrics["kept_fraction"] = kept_total / max(run.guard.step, 1)
        return LMUnlearnResult(model, metrics, run.guard.log)
