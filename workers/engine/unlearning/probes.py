"""Post-hoc probes of how deep the forgetting goes (they need a network, hence torch).

The array-only metrics live in ``workers.engine.metrics``; these run the model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from contracts.classifier import ArchitectureConfig
from workers.engine.data import ImageArrays
from workers.engine.unlearning import common as C


def relearn_resistance(
    arch: ArchitectureConfig,
    state_dict: Mapping[str, torch.Tensor],
    forget: ImageArrays,
    steps: int = 10,
    samples: int = 16,
    lr: float = 0.01,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """Forget accuracy after ``steps`` SGD steps on ``samples`` forget samples.

    A model that only hid the forget data relearns it from a handful of examples; one
    that really lost it needs about as long as a model that never saw it. Accuracy is
    measured on the *other* forget samples (the held-out part), so it is recovery, not
    memorisation of the relearning batch. Compare the result between the unlearned and
    the retrained model: the closer, the better.
    """
    if len(forget) < 2:
        raise ValueError("relearn_resistance needs at least 2 forget samples")
    torch_device = C.resolve_device(device)
    C.seed_all(seed)
    rng = np.random.default_rng(seed)
    n = min(samples, len(forget) - 1)
    order = rng.permutation(len(forget))
    relearn, held_out = forget.subset(np.sort(order[:n])), forget.subset(np.sort(order[n:]))
    net = C.load_network(arch, state_dict, torch_device)
    before = C.accuracy_of(net, held_out, arch, torch_device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    batches = C.endless(C.loader(relearn, arch, batch_size=n, seed=seed))
    net.train()
    for _ in range(steps):
        x, y = next(batches)
        loss = F.cross_entropy(net(x.to(torch_device)), y.to(torch_device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = C.accuracy_of(net, held_out, arch, torch_device)
    return {
        "forget_accuracy_before": before,
        "forget_accuracy_after": after,
        "relearn_gain": after - before,
        "relearn_steps": float(steps),
        "relearn_samples": float(n),
    }


def penultimate_features(
    arch: ArchitectureConfig,
    state_dict: Mapping[str, torch.Tensor],
    arrays: ImageArrays,
    batch_size: int = 256,
    device: str = "cpu",
) -> np.ndarray:
    """Penultimate features (N x D) for ``metrics.linear_probe_accuracy``."""
    torch_device = C.resolve_device(device)
    net = C.load_network(arch, state_dict, torch_device).eval()
    out = []
    with torch.no_grad():
        for x, _ in C.ordered(arrays, arch, batch_size):
            out.append(net.features(x.to(torch_device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, net.feature_dim), np.float32)
