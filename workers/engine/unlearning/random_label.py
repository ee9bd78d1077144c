"""RL: fine-tune with random wrong labels on the forget set, true labels on retain.

Graves et al. ("Amnesiac Machine Learning") relabel the data to forget so the model's
confident memorised answers are overwritten; the retain term keeps accuracy elsewhere.
SalUn is this same loop restricted to salient weights, so both share ``relabel_loop``.
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
class RandomLabel(UnlearningMethod):
    """Random-label fine-tuning of the forget set plus retain cross-entropy (RL)."""

    spec = specs.RANDOM_LABEL

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        return relabel_loop(self.name, arch, state_dict, data, params, callbacks, mask=None)


def relabel_loop(
    method: str,
    arch: ArchitectureConfig,
    state_dict: Mapping[str, torch.Tensor],
    data: UnlearnData,
    params: Any,
    callbacks: Callbacks,
    mask: dict[str, torch.Tensor] | None,
    log: list[str] | None = None,
) -> UnlearnResult:
    """One forget batch (random wrong labels) + one retain batch per step.

    With ``mask`` only the masked-in entries move: gradients are masked and the others
    are reset to their original values after every step, so weight decay and momentum
    cannot drift them either (SalUn's "update only salient weights").
    """
    import torch
    import torch.nn.functional as F

    from workers.engine.unlearning import common as C

    device = C.resolve_device(params.device)
    generator = C.seed_all(params.seed)
    net = C.load_network(arch, state_dict, device)
    forget = C.loader(data.forget, arch, params.batch_size, params.seed)
    retain = C.endless(C.loader(data.retain, arch, params.batch_size, params.seed + 1))
    total = params.epochs * len(forget)
    guard = C.StepGuard(net, arch, data, params, callbacks, device, total, method)
    guard.log.extend(log or [])
    named = dict(net.named_parameters())
    opt = C.make_optimizer(
        named.values(), params.optimizer, params.lr, params.momentum, params.weight_decay
    )
    frozen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if mask is not None:
        frozen = {name: (mask[name].to(device), named[name].detach().clone()) for name in named}
    excluded = data.forget_labels if data.scope == "labels" else None
    net.train()
    for epoch in range(params.epochs):
        for xf, yf in forget.batches(epoch):
            guard.before()
            fake = C.other_labels(yf, arch.num_classes, generator, excluded)
            xr, yr = next(retain)
            xf, yf, fake = xf.to(device), yf.to(device), fake.to(device)
            logits_f = net(xf)
            ce_fake = F.cross_entropy(logits_f, fake, reduction="none")
            # LoReUn difficulty: still-low loss on the true label means not yet forgotten.
            difficulty = F.cross_entropy(logits_f.detach(), yf, reduction="none")
            loss = loreun_mean(ce_fake, difficulty, params)
            if params.retain_weight > 0:
                xr, yr = xr.to(device), yr.to(device)
                loss = loss + params.retain_weight * F.cross_entropy(net(xr), yr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if frozen:
                for name, (m, _) in frozen.items():
                    grad = named[name].grad
                    if grad is not None:
                        grad.mul_(m)
            opt.step()
            if frozen:
                with torch.no_grad():
                    for name, (m, original) in frozen.items():
                        named[name].copy_(torch.where(m.bool(), named[name], original))
            guard.after(loss)
        guard.note(f"{method}: epoch {epoch + 1}/{params.epochs} done")
    metrics = C.summary_metrics(net, arch, data, device, guard)
    return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)
