"""NegGrad / GA: gradient ascent on the forget-set loss.

The cheapest approximate method (a few passes over the forget set only), and the most
fragile: nothing holds the retain set in place, so it is the method the retain floor
(``retain_accuracy_floor``) exists for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import classifier as specs
from workers.engine.unlearning.base import (
    UnlearnData,
    UnlearningMethod,
    UnlearnResult,
    register,
    weighted_mean,
)

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.training import Callbacks


@register
class GradientAscent(UnlearningMethod):
    """Maximise the cross-entropy of the forget set (NegGrad / GA)."""

    spec = specs.GRADIENT_ASCENT

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        import torch.nn.functional as F

        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        C.seed_all(params.seed)
        net = C.load_network(arch, state_dict, device)
        forget = C.loader(data.forget, arch, params.batch_size, params.seed)
        total = params.epochs * len(forget)
        guard = C.StepGuard(net, arch, data, params, callbacks, device, total, self.name)
        opt = C.make_optimizer(
            net.parameters(), params.optimizer, params.lr, params.momentum, params.weight_decay
        )
        net.train()
        for epoch in range(params.epochs):
            for x, y in forget.batches(epoch):
                guard.before()
                x, y = x.to(device), y.to(device)
                ce = F.cross_entropy(net(x), y, reduction="none")
                # LoReUn weights come from the same CE: well-fitted samples get more push.
                loss = -weighted_mean(ce, params)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                guard.after(loss)
            guard.note(f"{self.name}: epoch {epoch + 1}/{params.epochs} done")
        metrics = C.summary_metrics(net, arch, data, device, guard)
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)
