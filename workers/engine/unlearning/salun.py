"""SalUn: random-label unlearning restricted to the weights salient for the forget set.

Fan et al. compute the gradient of the forget loss at the original weights, keep the
fraction of entries with the largest magnitude (a global threshold over all layers)
and run RL on those only. The rest of the network, which mostly serves the retain set,
is left exactly as it was.
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
from workers.engine.unlearning.random_label import relabel_loop

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.nets import Classifier
    from workers.engine.training import Callbacks


@register
class SalUn(UnlearningMethod):
    """Saliency mask from forget-loss gradients, then masked random-label fine-tuning."""

    spec = specs.SALUN

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        net = C.load_network(arch, state_dict, device)
        mask = saliency_mask(net, arch, data, params.batch_size, params.mask_fraction, device)
        kept = sum(int(m.sum()) for m in mask.values())
        size = sum(m.numel() for m in mask.values())
        note = f"{self.name}: {kept}/{size} weights salient ({kept / size:.1%})"
        callbacks.on_log(note)
        result = relabel_loop(
            self.name, arch, state_dict, data, params, callbacks, mask=mask, log=[note]
        )
        result.metrics["salient_fraction"] = kept / size
        return result


def saliency_mask(
    net: Classifier,
    arch: ArchitectureConfig,
    data: UnlearnData,
    batch_size: int,
    fraction: float,
    device: torch.device,
) -> dict[str, torch.Tensor]:
    """1 for the ``fraction`` of entries with the largest |grad of the forget CE|.

    The gradient is summed over the whole forget set at the original weights (no steps
    in between), in eval mode so BatchNorm statistics are not touched.
    """
    import torch
    import torch.nn.functional as F

    from workers.engine.unlearning import common as C

    net.eval()
    net.zero_grad(set_to_none=True)
    batches = C.ordered(data.forget, arch, batch_size)
    for x, y in batches:
        # Summed (not averaged) per batch so every forget sample counts the same.
        F.cross_entropy(net(x.to(device)), y.to(device), reduction="sum").backward()
    named = [(n, p) for n, p in net.named_parameters()]
    grads = {
        n: (p.grad.detach().abs() if p.grad is not None else torch.zeros_like(p)) for n, p in named
    }
    net.zero_grad(set_to_none=True)
    flat = torch.cat([g.flatten() for g in grads.values()])
    k = max(1, int(round(fraction * flat.numel())))
    # Exactly the top k entries (not ">= k-th value"): with many zero gradients a
    # threshold would sweep every zero into the mask.
    chosen = torch.zeros_like(flat)
    chosen[torch.topk(flat, k, sorted=False).indices] = 1.0
    mask: dict[str, torch.Tensor] = {}
    start = 0
    for n, g in grads.items():
        mask[n] = chosen[start : start + g.numel()].view_as(g)
        start += g.numel()
    return mask
