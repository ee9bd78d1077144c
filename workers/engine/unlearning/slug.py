"""SLUG: edit one layer, along one gradient, once.

Cai et al. compute the forget-loss and retain-loss gradients a single time. For every
layer they score importance (gradient norm relative to weight norm: how much forgetting
a step buys) and gradient alignment (cosine with the retain gradient: how much it costs
the retain set). On the Pareto front of high importance and low alignment they search
the step size along the forget gradient with forward passes only, and keep the single
layer and step that reach the forget target with the best retain accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from contracts.methods import classifier as specs
from contracts.methods.classifier import SlugParams
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


@register
class Slug(UnlearningMethod):
    """Single layer, single gradient: a searched step on one Pareto-optimal layer (SLUG)."""

    spec = specs.SLUG

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: Any,
    ) -> UnlearnResult:
        import torch

        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        C.seed_all(params.seed)
        net = C.load_network(arch, state_dict, device)
        retain_sample = C.probe(data.retain, params.retain_gradient_samples, params.seed)
        layers = [n for n, p in net.named_parameters() if p.ndim >= 2]
        total = 2 + params.max_layers * params.search_iterations
        guard = C.StepGuard(net, arch, data, params, callbacks, device, total, self.name)

        guard.before()
        g_forget = mean_gradient(net, data.forget, arch, params.batch_size, device)
        guard.after(0.0, "forget_gradient")
        guard.before()
        g_retain = mean_gradient(net, retain_sample, arch, params.batch_size, device)
        guard.after(0.0, "retain_gradient")

        weights = dict(net.named_parameters())
        importance = {
            n: float(g_forget[n].norm() / weights[n].detach().norm().clamp_min(1e-12))
            for n in layers
        }
        alignment = {
            n: float(
                torch.nn.functional.cosine_similarity(
                    g_forget[n].flatten(), g_retain[n].flatten(), dim=0, eps=1e-12
                )
            )
            for n in layers
        }
        front = pareto_front(layers, importance, alignment)[: params.max_layers]
        guard.note(
            f"{self.name}: Pareto layers "
            + ", ".join(f"{n} (imp {importance[n]:.3g}, align {alignment[n]:.3g})" for n in front)
        )

        target = params.forget_accuracy_target
        if target is None:
            if data.scope == "labels" or data.test is None or len(data.test) == 0:
                target = 0.0
            else:
                target = C.accuracy_of(
                    net, C.probe(data.test, params.retain_probe_size, params.seed), arch, device
                )
        best: tuple[bool, float, float, str, float] | None = None
        for name in front:
            reached, step, forget_acc, retain_acc = search_step(
                net, name, g_forget[name], data.forget, guard, params, target, arch, device
            )
            guard.note(
                f"{self.name}: {name}: step {step:.4g} x |W| -> forget {forget_acc:.3f}, "
                f"retain probe {retain_acc:.3f}"
            )
            # Prefer reaching the target, then retain accuracy, then lower forget accuracy.
            key = (reached, retain_acc if reached else -forget_acc, -forget_acc, name, step)
            if best is None or key[:3] > best[:3]:
                best = key
        assert best is not None
        _, _, _, name, step = best
        apply_step(net, name, g_forget[name], step)
        guard.note(f"{self.name}: edited {name} with step {step:.4g} x |W|")
        guard.check_floor()
        metrics = C.summary_metrics(net, arch, data, device, guard)
        metrics["relative_step"] = step
        metrics["forget_accuracy_target"] = target
        return UnlearnResult(C.cpu_state_dict(net), metrics, guard.log)


def mean_gradient(
    net: torch.nn.Module,
    arrays: ImageArrays,
    arch: ArchitectureConfig,
    batch_size: int,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """Gradient of the mean cross-entropy over ``arrays`` (eval mode, weights untouched)."""
    import torch.nn.functional as F

    from workers.engine.unlearning import common as C

    net.eval()
    net.zero_grad(set_to_none=True)
    n = len(arrays)
    for x, y in C.ordered(arrays, arch, batch_size):
        (F.cross_entropy(net(x.to(device)), y.to(device), reduction="sum") / n).backward()
    grads = {
        name: p.grad.detach().clone() if p.grad is not None else p.detach() * 0
        for name, p in net.named_parameters()
    }
    net.zero_grad(set_to_none=True)
    return grads


def pareto_front(
    layers: list[str], importance: dict[str, float], alignment: dict[str, float]
) -> list[str]:
    """Layers no other layer beats on both importance (higher) and alignment (lower).

    Sorted by importance, most important first.
    """
    front = [
        a
        for a in layers
        if not any(
            importance[b] >= importance[a]
            and alignment[b] <= alignment[a]
            and (importance[b] > importance[a] or alignment[b] < alignment[a])
            for b in layers
        )
    ]
    return sorted(front, key=lambda n: -importance[n])


def apply_step(net: torch.nn.Module, name: str, gradient: torch.Tensor, step: float) -> None:
    """theta_l += step * |theta_l| * g / |g|: ascent on the forget loss, scale-free."""
    import torch

    param = dict(net.named_parameters())[name]
    with torch.no_grad():
        direction = gradient / gradient.norm().clamp_min(1e-12)
        param.add_(direction * (step * float(param.norm())))


def search_step(
    net: torch.nn.Module,
    name: str,
    gradient: torch.Tensor,
    forget: ImageArrays,
    guard: Any,
    params: SlugParams,
    target: float,
    arch: ArchitectureConfig,
    device: torch.device,
) -> tuple[bool, float, float, float]:
    """Bisect the smallest step that brings forget accuracy to ``target``.

    Returns (reached, step, forget accuracy, retain probe accuracy) and leaves the
    network's weights exactly as they were.
    """
    import torch

    from workers.engine.unlearning import common as C

    param = dict(net.named_parameters())[name]
    original = param.detach().clone()

    def evaluate(step: float) -> tuple[float, float]:
        with torch.no_grad():
            param.copy_(original)
        apply_step(net, name, gradient, step)
        forget_acc = C.accuracy_of(net, forget, arch, device)
        retain_acc = C.accuracy_of(net, guard.retain_probe, arch, device)
        return forget_acc, retain_acc

    iterations = C.resolved(params.search_iterations, "search_iterations")
    try:
        lo, hi = 0.0, params.max_relative_step
        hi_scores = evaluate(hi)
        if hi_scores[0] > target:
            for _ in range(iterations):
                guard.before()
                guard.after(0.0, "search")
            return False, hi, hi_scores[0], hi_scores[1]
        best = (hi, *hi_scores)
        for _ in range(iterations):
            guard.before()
            mid = (lo + hi) / 2
            scores = evaluate(mid)
            if scores[0] <= target:
                hi, best = mid, (mid, *scores)
            else:
                lo = mid
            guard.after(0.0, "search")
        return True, best[0], best[1], best[2]
    finally:
        with torch.no_grad():
            param.copy_(original)
