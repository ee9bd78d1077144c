"""SSD: selective synaptic dampening, a retrain-free one-shot edit.

Foster et al. estimate each parameter's importance (diagonal Fisher information: mean
squared gradient) on the full training data and on the forget set. Parameters that
matter far more to the forget set than to the data at large are shrunk in proportion:
theta *= min(lambda * I_D / I_f, 1) wherever I_f > alpha * I_D. No optimizer, no
epochs: two gradient passes and one multiplication.
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
)

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig
    from workers.engine.data import ImageArrays
    from workers.engine.training import Callbacks
    from workers.engine.unlearning.common import StepGuard


@register
class SSD(UnlearningMethod):
    """Shrink parameters far more important to the forget set than to all data (SSD)."""

    spec = specs.SSD

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: Any,
    ) -> UnlearnResult:
        import numpy as np
        import torch

        from workers.engine.data import ImageArrays
        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        C.seed_all(params.seed)
        net = C.load_network(arch, state_dict, device)
        full = ImageArrays(
            images=np.concatenate([data.retain.images, data.forget.images]),
            labels=np.concatenate([data.retain.labels, data.forget.labels]),
            sample_ids=data.retain.sample_ids + data.forget.sample_ids,
        )
        if params.full_set_samples is not None:
            full = C.probe(full, params.full_set_samples, params.seed)
        bs = params.batch_size
        total = -(-len(full) // bs) + -(-len(data.forget) // bs)
        guard = C.StepGuard(net, arch, data, params, callbacks, device, total, self.name)
        importance_full = fisher_diagonal(net, full, arch, bs, device, guard)
        importance_forget = fisher_diagonal(net, data.forget, arch, bs, device, guard)
        dampened = 0
        count = 0
        with torch.no_grad():
            for name, p in net.named_parameters():
                i_full, i_forget = importance_full[name], importance_forget[name]
                selected = i_forget > params.selection_weighting * i_full
                factor = (params.dampening_constant * i_full / i_forget.clamp_min(1e-30)).pow(
                    params.exponent
                )
                factor = torch.where(selected, factor.clamp(max=1.0), torch.ones_like(factor))
                p.mul_(factor)
                dampened += int(selected.sum())
                count += p.numel()
        guard.note(f"{self.name}: dampened {dampened}/{count} parameters")
        guard.check_floor()
        metrics = C.summary_metrics(net, arch, data, device, guard)
        metrics["dampened_fraction"] = dampened / max(count, 1)
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)


def fisher_diagonal(
    net: torch.nn.Module,
    arrays: ImageArrays,
    arch: ArchitectureConfig,
    batch_size: int,
    device: torch.device,
    guard: StepGuard,
) -> dict[str, torch.Tensor]:
    """Mean over batches of the squared gradient of the batch-mean cross-entropy.

    Eval mode, so BatchNorm uses (and keeps) its running statistics.
    """
    import torch
    import torch.nn.functional as F

    from workers.engine.unlearning import common as C

    net.eval()
    named = list(net.named_parameters())
    total = {name: torch.zeros_like(p) for name, p in named}
    batches = 0
    for x, y in C.ordered(arrays, arch, batch_size):
        guard.before()
        net.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x.to(device)), y.to(device))
        loss.backward()
        for name, p in named:
            if p.grad is not None:
                total[name] += p.grad.detach() ** 2
        batches += 1
        guard.after(loss, "fisher_loss")
    net.zero_grad(set_to_none=True)
    return {name: t / max(batches, 1) for name, t in total.items()}
