"""NegGrad+: descend on the retain loss while ascending on the forget loss.

Kurmanji et al. introduce it as the strong baseline next to SCRUB: plain gradient
ascent with a retain term that keeps the model useful.
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
class NegGradPlus(UnlearningMethod):
    """beta * CE(retain) - (1 - beta) * CE(forget), one batch of each per step (NegGrad+)."""

    spec = specs.NEGGRAD_PLUS

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
        retain = C.loader(data.retain, arch, params.batch_size, params.seed)
        forget = C.endless(C.loader(data.forget, arch, params.batch_size, params.seed + 1))
        total = params.epochs * len(retain)
        guard = C.StepGuard(net, arch, data, params, callbacks, device, total, self.name)
        opt = C.make_optimizer(
            net.parameters(), params.optimizer, params.lr, params.momentum, params.weight_decay
        )
        beta = params.retain_weight
        net.train()
        for epoch in range(params.epochs):
            for xr, yr in retain.batches(epoch):
                guard.before()
                xf, yf = next(forget)
                xr, yr, xf, yf = xr.to(device), yr.to(device), xf.to(device), yf.to(device)
                retain_loss = F.cross_entropy(net(xr), yr)
                forget_ce = F.cross_entropy(net(xf), yf, reduction="none")
                loss = beta * retain_loss - (1 - beta) * weighted_mean(forget_ce, params)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                guard.after(loss)
            guard.note(f"{self.name}: epoch {epoch + 1}/{params.epochs} done")
        metrics = C.summary_metrics(net, arch, data, device, guard)
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)
