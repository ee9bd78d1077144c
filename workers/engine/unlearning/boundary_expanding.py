"""Boundary Expanding: route the forgotten class into a shadow class, then delete it.

Chen et al. add one extra output neuron, fine-tune so every forget sample is predicted
as that shadow class, and then prune the neuron. What the forget samples map to after
pruning is whatever the remaining classes make of features tuned away from their own.
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
    from workers.engine.nets import Classifier
    from workers.engine.training import Callbacks


@register
class BoundaryExpanding(UnlearningMethod):
    """Train the forgotten class into an extra shadow neuron, then prune it (class-wise)."""

    spec = specs.BOUNDARY_EXPANDING

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
        shadow = arch.num_classes
        set_head_outputs(net, shadow + 1)
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
                logits = net(x)
                target = torch.full_like(y, shadow)
                ce = F.cross_entropy(logits, target, reduction="none")
                with torch.no_grad():
                    difficulty = F.cross_entropy(logits[:, :shadow], y, reduction="none")
                loss = loreun_mean(ce, difficulty, params)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                guard.after(loss)
            guard.note(f"{self.name}: epoch {epoch + 1}/{params.epochs} done")
        set_head_outputs(net, shadow)
        guard.note(f"{self.name}: pruned the shadow neuron")
        metrics = C.summary_metrics(net, arch, data, device, guard)
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)


def set_head_outputs(net: Classifier, outputs: int) -> None:
    """Replace the final linear layer by one with ``outputs`` rows, keeping shared rows.

    Growing adds freshly initialised rows (the shadow neuron); shrinking drops the last
    rows (pruning it). Either way the other classes keep their exact weights.
    """
    import torch
    import torch.nn as nn

    old = net.head
    new = nn.Linear(old.in_features, outputs, bias=old.bias is not None).to(
        device=old.weight.device, dtype=old.weight.dtype
    )
    keep = min(outputs, old.out_features)
    with torch.no_grad():
        new.weight[:keep] = old.weight[:keep]
        if old.bias is not None and new.bias is not None:
            new.bias[:keep] = old.bias[:keep]
    parent_name, _, child = net.head_name.rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    setattr(parent, child, new)
