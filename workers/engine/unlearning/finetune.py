"""FT: keep training the original model on the retain set only.

Forgetting comes from catastrophic forgetting of whatever the retain set does not
support. Cheap and safe for retain accuracy, weak on forgetting (SalUn, Table A: UA 0.6
on CIFAR-10 random forgetting); it is the baseline every other method must beat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import classifier as specs
from workers.engine.unlearning.base import (
    IterativeParams,
    UnlearnData,
    UnlearningMethod,
    UnlearnResult,
    register,
)

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.training import Callbacks


@register
class Finetune(UnlearningMethod):
    """Fine-tune on the retain set (FT).

    Baseline of Warnecke et al. and Jia et al. (Unlearn-Sparse).
    """

    spec = specs.FINETUNE

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        return retain_finetune(self.name, arch, state_dict, data, params, callbacks, l1=0.0)


def retain_finetune(
    method: str,
    arch: ArchitectureConfig,
    state_dict: Mapping[str, torch.Tensor],
    data: UnlearnData,
    params: IterativeParams,
    callbacks: Callbacks,
    l1: float,
) -> UnlearnResult:
    """Retain-set fine-tuning, with an optional l1 penalty that decays linearly to 0.

    Shared by FT (``l1=0``) and l1-sparse, which Jia et al. define as exactly this loop
    plus ``gamma_t * ||theta||_1`` with gamma decaying over the epochs.
    """
    import torch.nn.functional as F

    from workers.engine.unlearning import common as C

    device = C.resolve_device(params.device)
    C.seed_all(params.seed)
    net = C.load_network(arch, state_dict, device)
    retain = C.loader(data.retain, arch, params.batch_size, params.seed)
    epochs = C.resolved(params.epochs, "epochs")
    total = epochs * len(retain)
    guard = C.StepGuard(net, arch, data, params, callbacks, device, total, method)
    opt = C.make_optimizer(
        net.parameters(), params.optimizer, params.lr, params.momentum, params.weight_decay
    )
    net.train()
    for epoch in range(epochs):
        gamma = l1 * (1.0 - epoch / epochs)
        for x, y in retain.batches(epoch):
            guard.before()
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(net(x), y)
            if gamma > 0:
                loss = loss + gamma * sum(p.abs().sum() for p in net.parameters())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            guard.after(loss)
        guard.note(f"{method}: epoch {epoch + 1}/{params.epochs} done (l1 weight {gamma:.2e})")
    metrics = C.summary_metrics(net, arch, data, device, guard)
    return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)
