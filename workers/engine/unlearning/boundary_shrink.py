"""Boundary Shrink: relabel each forget sample as its nearest other class.

Chen et al. (Boundary Unlearning) find, for every sample of the forgotten class, the
class across the closest decision boundary with one FGSM step on the original model,
then fine-tune the model to predict that neighbour. The forgotten class's region is
absorbed by its neighbours, which is what a retrained model looks like from outside.
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
class BoundaryShrink(UnlearningMethod):
    """Fine-tune the forgotten class toward its nearest neighbour classes (class-wise only)."""

    spec = specs.BOUNDARY_SHRINK

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
        original = C.frozen_copy(net)
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
                neighbour = nearest_other_class(original, x, y, params.bound)
                logits = net(x)
                ce = F.cross_entropy(logits, neighbour, reduction="none")
                with torch.no_grad():
                    difficulty = F.cross_entropy(logits, y, reduction="none")
                loss = loreun_mean(ce, difficulty, params)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                guard.after(loss)
            guard.note(f"{self.name}: epoch {epoch + 1}/{params.epochs} done")
        metrics = C.summary_metrics(net, arch, data, device, guard)
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)


def nearest_other_class(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bound: float
) -> torch.Tensor:
    """The class the original model gives an FGSM-perturbed copy of ``x``.

    The true class is excluded from the argmax: the paper's neighbour is by definition
    another class, and a one-step attack that fails to cross the boundary would
    otherwise just re-teach the true label.
    """
    import torch
    import torch.nn.functional as F

    x_adv = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x_adv), y)
    (grad,) = torch.autograd.grad(loss, x_adv)
    with torch.no_grad():
        x_adv = (x + bound * grad.sign()).clamp_(0.0, 1.0)
        logits = model(x_adv)
        logits.scatter_(1, y.view(-1, 1), float("-inf"))
        return logits.argmax(dim=1)
