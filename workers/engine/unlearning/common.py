"""Torch machinery shared by the unlearning methods.

Kept apart from ``base.py`` so the registry stays importable without torch; method
files import this module inside ``unlearn``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from workers.engine import evaluation
from workers.engine.data import ImageArrays, make_loader
from workers.engine.errors import TrainingStopped
from workers.engine.nets import Classifier, build_network
from workers.engine.unlearning.base import (
    InvalidMethodParams,
    MethodParams,
    UnlearnData,
    UnlearningDiverged,
)

if TYPE_CHECKING:
    from contracts.classifier import ArchitectureConfig
    from workers.engine.data import BatchIterator
    from workers.engine.training import Callbacks


def resolve_device(name: str) -> torch.device:
    """'auto' means CUDA when present; a named device must exist on this worker."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return evaluation.resolve_device(name)


def load_network(
    arch: ArchitectureConfig, state_dict: Mapping[str, torch.Tensor], device: torch.device
) -> Classifier:
    """A fresh network holding a *copy* of ``state_dict`` (the caller's dict stays intact)."""
    net = build_network(arch)
    net.load_state_dict({k: v.detach().clone() for k, v in state_dict.items()}, strict=True)
    return net.to(device)


def cpu_state_dict(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone() for k, v in net.state_dict().items()}


def resolved(value: int | None, name: str) -> int:
    """A size that ``UnlearningMethod.run`` fills from the budget when the user left it
    empty (epochs, search steps); still empty here means ``unlearn`` was called around it."""
    if value is None:
        raise InvalidMethodParams(f"{name} is unset: run the method through run(), which sizes it")
    return value


def frozen_copy(net: nn.Module) -> nn.Module:
    """An eval-mode, gradient-free copy (teachers, reference models)."""
    twin = copy.deepcopy(net).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def make_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    params = list(parameters)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")


def loader(
    arrays: ImageArrays, arch: ArchitectureConfig, batch_size: int, seed: int
) -> BatchIterator:
    return make_loader(arrays, arch, batch_size=batch_size, shuffle=True, seed=seed)


def ordered(arrays: ImageArrays, arch: ArchitectureConfig, batch_size: int) -> BatchIterator:
    """Batches in dataset order (for gradient or statistics passes)."""
    return make_loader(arrays, arch, batch_size=batch_size, shuffle=False)


def endless(batches: BatchIterator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cycle through epochs forever (for the smaller set paired with a bigger one)."""
    epoch = 0
    while True:
        yield from batches.batches(epoch)
        epoch += 1


def probe(arrays: ImageArrays, size: int, seed: int) -> ImageArrays:
    """A seeded random subset of at most ``size`` samples, for cheap accuracy checks."""
    if len(arrays) <= size:
        return arrays
    rng = np.random.default_rng(seed)
    return arrays.subset(np.sort(rng.choice(len(arrays), size=size, replace=False)))


def logits_of(
    net: nn.Module,
    arrays: ImageArrays,
    arch: ArchitectureConfig,
    device: torch.device,
    batch_size: int = 512,
) -> torch.Tensor:
    """Eval-mode logits on CPU, in sample order (train/eval mode is restored)."""
    logits, _ = evaluation.predict(net, arrays, arch, batch_size, device)  # type: ignore[arg-type]
    return torch.from_numpy(logits)


def accuracy_of(
    net: nn.Module, arrays: ImageArrays, arch: ArchitectureConfig, device: torch.device
) -> float:
    if len(arrays) == 0:
        return float("nan")
    logits = logits_of(net, arrays, arch, device)
    labels = torch.from_numpy(arrays.labels)
    return float((logits.argmax(dim=1) == labels).float().mean())


def other_labels(
    labels: torch.Tensor,
    num_classes: int,
    generator: torch.Generator,
    excluded: Sequence[int] | None = None,
) -> torch.Tensor:
    """A random label different from the true one for every sample.

    For class-wise forgetting the forgotten classes are excluded too, so random labelling
    never teaches the model one forgotten class in place of another.
    """
    banned = set(excluded or ())
    allowed = torch.tensor([c for c in range(num_classes) if c not in banned], dtype=torch.long)
    if len(allowed) < 2 and not banned:
        raise ValueError("random relabelling needs at least two classes")
    cpu_labels = labels.cpu()
    picks = torch.randint(0, len(allowed), cpu_labels.shape, generator=generator)
    out = allowed[picks]
    # Resample the few that hit the true label (only possible when it is allowed).
    clash = out == cpu_labels
    while bool(clash.any()):
        redraw = torch.randint(0, len(allowed), (int(clash.sum()),), generator=generator)
        out[clash] = allowed[redraw]
        clash = out == cpu_labels
    return out.to(labels.device)


def kl_to_teacher(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Per-sample KL(teacher || student) at a distillation temperature, scaled by T^2."""
    t = temperature
    log_s = F.log_softmax(student_logits / t, dim=1)
    log_t = F.log_softmax(teacher_logits / t, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1) * (t * t)


class StepGuard:
    """Everything a loop must do around each optimizer step, in one place.

    Cancellation (``should_stop``), progress, NaN/inf detection and the optional retain
    accuracy floor. Methods call ``before()`` at the start of a step and ``after(loss)``
    once it is taken.
    """

    def __init__(
        self,
        net: nn.Module,
        arch: ArchitectureConfig,
        data: UnlearnData,
        params: MethodParams,
        callbacks: Callbacks,
        device: torch.device,
        total_steps: int,
        method: str,
    ) -> None:
        self.net = net
        self.arch = arch
        self.params = params
        self.callbacks = callbacks
        self.device = device
        self.total = max(int(total_steps), 1)
        self.method = method
        self.step = 0
        self.started = time.monotonic()
        self.retain_probe = probe(data.retain, params.retain_probe_size, params.seed)
        self.log: list[str] = []

    def before(self) -> None:
        if self.callbacks.should_stop():
            raise TrainingStopped(f"{self.method} stopped at step {self.step}", step=self.step)

    def after(self, loss: torch.Tensor | float, name: str = "loss") -> None:
        self.step += 1
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not np.isfinite(value):
            raise UnlearningDiverged(
                f"{self.method}: {name} became {value} at step {self.step}", step=self.step
            )
        self.callbacks.on_progress(self.step, self.total)
        if self.step % self.params.probe_every_steps == 0 or self.step == self.total:
            self.callbacks.on_metric(f"unlearn/{name}", value, self.step)
            self.check_floor()

    def check_floor(self) -> None:
        floor = self.params.retain_accuracy_floor
        if floor is None:
            return
        acc = accuracy_of(self.net, self.retain_probe, self.arch, self.device)
        self.callbacks.on_metric("unlearn/retain_probe_accuracy", acc, self.step)
        if acc < floor:
            raise UnlearningDiverged(
                f"{self.method}: retain probe accuracy {acc:.3f} fell below the floor "
                f"{floor:.3f} at step {self.step}",
                step=self.step,
            )

    def note(self, message: str) -> None:
        self.log.append(message)
        self.callbacks.on_log(message)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def summary_metrics(
    net: nn.Module,
    arch: ArchitectureConfig,
    data: UnlearnData,
    device: torch.device,
    guard: StepGuard,
) -> dict[str, float]:
    """Cheap end-of-run numbers every method reports (full evaluation is a separate job)."""
    metrics = {
        "forget_accuracy": accuracy_of(net, data.forget, arch, device),
        "retain_probe_accuracy": accuracy_of(net, guard.retain_probe, arch, device),
        "steps": float(guard.step),
        "seconds": guard.seconds,
    }
    if data.test is not None and len(data.test) > 0:
        test_probe = probe(data.test, guard.params.retain_probe_size, guard.params.seed)
        metrics["test_probe_accuracy"] = accuracy_of(net, test_probe, arch, device)
    return metrics


def seed_all(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout, init) and return a generator for our own draws."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
