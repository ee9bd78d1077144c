"""OPC: contract the forget set's features to a single point (the origin).

Jung et al. argue that methods which only change the output layer forget "shallowly":
the features still separate the forget data, so a probe or a few fine-tuning steps
bring it back. OPC instead drives the penultimate features of forget samples to zero
(squared norm penalty) while cross-entropy on retain keeps the rest of the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import classifier as specs
from workers.engine.unlearning.base import (
    UnlearnData,
    UnlearningMethod,
    UnlearnResult,
    loreun_mean,
    register,
)

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.training import Callbacks


@register
class OPC(UnlearningMethod):
    """Retain cross-entropy plus the squared feature norm of forget samples (OPC)."""

    spec = specs.OPC

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        import torch
        import torch.nn.functional as F

        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        C.seed_all(params.seed)
        net = C.load_network(arch, state_dict, device)
        forget = C.loader(data.forget, arch, params.batch_size, params.seed)
        retain = C.endless(C.loader(data.retain, arch, params.batch_size, params.seed + 1))
        total = params.epochs * len(forget)
        guard = C.StepGuard(net, arch, data, params, callbacks, device, total, self.name)
        opt = C.make_optimizer(
            net.parameters(), params.optimizer, params.lr, params.momentum, params.weight_decay
        )
        net.train()
        for epoch in range(params.epochs):
            for xf, yf in forget.batches(epoch):
                guard.before()
                xf, yf = xf.to(device), yf.to(device)
                features = net.features(xf)
                norm2 = features.pow(2).sum(dim=1)
                with torch.no_grad():
                    difficulty = F.cross_entropy(net.head(features), yf, reduction="none")
                loss = params.contraction_weight * loreun_mean(norm2, difficulty, params)
                if params.retain_weight > 0:
                    xr, yr = next(retain)
                    xr, yr = xr.to(device), yr.to(device)
                    loss = loss + params.retain_weight * F.cross_entropy(net(xr), yr)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                guard.after(loss)
            guard.note(f"{self.name}: epoch {epoch + 1}/{params.epochs} done")
        metrics = C.summary_metrics(net, arch, data, device, guard)
        metrics["forget_feature_norm"] = float(
            feature_norm(net, data, arch, device, params.batch_size)
        )
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)


def feature_norm(
    net: Any, data: UnlearnData, arch: ArchitectureConfig, device: torch.device, batch_size: int
) -> float:
    """Mean L2 norm of the forget set's penultimate features (0 = fully contracted)."""
    import torch

    from workers.engine.unlearning import common as C

    net.eval()
    norms = []
    with torch.no_grad():
        for x, _ in C.ordered(data.forget, arch, batch_size):
            norms.append(net.features(x.to(device)).norm(dim=1).cpu())
    return float(torch.cat(norms).mean())
