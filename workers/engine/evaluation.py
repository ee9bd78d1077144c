"""Accuracy, loss and per-class accuracy of a classifier on a labelled sample set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from contracts.classifier import ArchitectureConfig
from workers.engine.checkpoint import validate_state_dict
from workers.engine.data import ImageArrays, make_loader
from workers.engine.errors import EngineError
from workers.engine.nets import Classifier, build_network


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, refusing devices this machine does not have."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"device {name!r} requested but CUDA is not available on this worker")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise EngineError(f"device {name!r} requested but MPS is not available on this worker")
    return device


@torch.no_grad()
def predict(
    net: Classifier,
    arrays: ImageArrays,
    arch: ArchitectureConfig,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N x num_classes, float32) and labels (N, int64), in sample order.

    Runs in eval mode and restores the network's previous train/eval mode afterwards,
    so it is safe to call in the middle of a training loop.
    """
    device = torch.device(device)
    was_training = net.training
    net.eval()
    try:
        outputs = [
            net(x.to(device, non_blocking=True)).float().cpu()
            for x, _ in make_loader(arrays, arch, batch_size, shuffle=False)
        ]
    finally:
        net.train(was_training)
    logits = torch.cat(outputs) if outputs else torch.empty(0, arch.num_classes)
    return logits.numpy(), arrays.labels.copy()


def summarize_predictions(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """accuracy, mean cross-entropy, count and per-class accuracy (classes present only)."""
    if len(labels) == 0:
        raise EngineError("cannot evaluate on an empty sample set")
    logits_t = torch.from_numpy(logits)
    labels_t = torch.from_numpy(labels)
    correct = logits.argmax(axis=1) == labels
    per_class = {str(int(c)): float(correct[labels == c].mean()) for c in np.unique(labels)}
    return {
        "accuracy": float(correct.mean()),
        "loss": float(F.cross_entropy(logits_t, labels_t)),
        "count": int(len(labels)),
        "per_class_accuracy": per_class,
    }


def evaluate_network(
    net: Classifier,
    arrays: ImageArrays,
    arch: ArchitectureConfig,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """``evaluate_classifier`` for a network already in memory (used during training)."""
    check_labels(arrays, arch.num_classes, "evaluation")
    logits, labels = predict(net, arrays, arch, batch_size, device)
    return summarize_predictions(logits, labels)


def evaluate_classifier(
    arch: ArchitectureConfig,
    state_dict: Mapping[str, torch.Tensor],
    arrays: ImageArrays,
    batch_size: int = 256,
    device: str = "cpu",
) -> dict[str, Any]:
    """Build ``arch``, load ``state_dict`` strictly and measure it on ``arrays``."""
    validate_state_dict(arch, state_dict)
    torch_device = resolve_device(device)
    net = build_network(arch)
    net.load_state_dict(state_dict, strict=True)
    net.to(torch_device)
    return evaluate_network(net, arrays, arch, batch_size, torch_device)


def check_labels(arrays: ImageArrays, num_classes: int, what: str) -> None:
    """Out-of-range labels would crash deep inside cross-entropy; say which sample instead."""
    if len(arrays) == 0:
        return
    bad = np.flatnonzero((arrays.labels < 0) | (arrays.labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise EngineError(
            f"{what} set has {len(bad)} label(s) outside 0..{num_classes - 1}; "
            f"first: sample {arrays.sample_ids[i]!r} has label {int(arrays.labels[i])} "
            f"(num_classes={num_classes})"
        )
