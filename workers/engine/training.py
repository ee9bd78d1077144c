"""Supervised training of a classifier, seeded, resumable and cancellable.

The runner drives this through ``Callbacks`` (progress, logs, metrics, checkpoints,
cancellation) so that the loop itself knows nothing of jobs, databases or queues.
Reproducibility contract on CPU: the same arch, params and data give bit-identical
weights, and resuming from any state passed to ``on_checkpoint`` gives the same final
weights as a run that was never interrupted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim import SGD, Adam, Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler

from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine.checkpoint import validate_state_dict
from workers.engine.data import ImageArrays, make_loader
from workers.engine.errors import (
    CheckpointMismatch,
    EngineError,
    TrainingDiverged,
    TrainingStopped,
)
from workers.engine.evaluation import check_labels, evaluate_network, resolve_device
from workers.engine.nets import Classifier, build_network
from workers.engine.resumable import (
    Callbacks,
    ResumableLoop,
    data_digest,
    read_resume_state,
    save_resume_state,
    to_cpu,
)

__all__ = [
    "Callbacks",
    "EngineError",
    "TrainResult",
    "TrainingDiverged",
    "TrainingStopped",
    "build_optimizer",
    "build_scheduler",
    "load_resume_state",
    "save_resume_state",
    "train_classifier",
]

RESUME_FORMAT = "expunge.classifier_train_resume/1"


@dataclass
class TrainResult:
    """Final weights (CPU), summary metrics and one history entry per epoch."""

    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    # The exact samples trained on (after max_train_samples): the lineage records them.
    train_sample_ids: list[str] = field(default_factory=list)


def build_optimizer(net: torch.nn.Module, params: TrainParams) -> Optimizer:
    """The optimizer ``params`` asks for, over all of ``net``'s parameters."""
    if params.optimizer == "adam":
        return Adam(net.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return SGD(
        net.parameters(),
        lr=params.lr,
        momentum=params.momentum,
        weight_decay=params.weight_decay,
    )


def build_scheduler(
    optimizer: Optimizer, params: TrainParams, total_steps: int
) -> LRScheduler | None:
    """Per-step schedule; ``None`` for a constant learning rate."""
    if params.lr_schedule == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    return None


def _load_weights(net: Classifier, arch: ArchitectureConfig, state_dict: dict, what: str) -> None:
    try:
        validate_state_dict(arch, state_dict)
    except CheckpointMismatch as exc:
        raise EngineError(f"{what}: {exc}") from exc
    net.load_state_dict(state_dict, strict=True)


def train_classifier(
    arch: ArchitectureConfig,
    params: TrainParams,
    train: ImageArrays,
    test: ImageArrays | None = None,
    callbacks: Callbacks | None = None,
    resume: dict[str, Any] | None = None,
    init_state_dict: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``arch`` on ``train`` with cross-entropy; evaluate on ``test`` after each epoch.

    ``init_state_dict`` starts from given weights (fine-tuning); ``resume`` continues a run
    from a state its callbacks received. The global torch RNG is left as it was found.
    """
    callbacks = callbacks or Callbacks()
    if len(train) == 0:
        raise EngineError("the training set is empty")
    check_labels(train, arch.num_classes, "training")
    if test is not None:
        check_labels(test, arch.num_classes, "test")
    device = resolve_device(params.device)

    if params.max_train_samples is not None and len(train) > params.max_train_samples:
        rng = np.random.default_rng(params.seed)
        keep = np.sort(rng.choice(len(train), size=params.max_train_samples, replace=False))
        train = train.subset(keep)
    digest = data_digest(train)
    if resume is not None:
        _Loop.check_resume(resume, arch, params, digest)

    loader = make_loader(train, arch, params.batch_size, shuffle=True, seed=params.seed)
    steps_per_epoch = len(loader)
    total_steps = params.epochs * steps_per_epoch

    # Fork the CPU RNG so seeding here does not leak into the caller's process.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        net = build_network(arch)
        if init_state_dict is not None:
            _load_weights(net, arch, init_state_dict, "init_state_dict")
        if resume is not None:
            _load_weights(net, arch, resume["model"], "resume state")
            torch.set_rng_state(resume["torch_rng"])
        net.to(device)
        optimizer = build_optimizer(net, params)
        scheduler = build_scheduler(optimizer, params, total_steps)
        if resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
            if scheduler is not None and resume["scheduler"] is not None:
                scheduler.load_state_dict(resume["scheduler"])

        loop = _Loop(
            arch, params, net, optimizer, scheduler, loader, test, callbacks, device, digest
        )
        if resume is not None:
            loop.restore(resume)
        result = loop.run(total_steps)
    result.train_sample_ids = list(train.sample_ids)
    return result


class _Loop(ResumableLoop):
    """A classifier's epochs of shuffled batches; resumable mid-epoch (the batch order of
    each epoch is seeded, and the torch RNG travels in the state)."""

    arch: ArchitectureConfig
    params: TrainParams
    resume_format = RESUME_FORMAT

    def __init__(
        self,
        arch: ArchitectureConfig,
        params: TrainParams,
        net: Classifier,
        optimizer: Optimizer,
        scheduler: LRScheduler | None,
        loader: Any,
        test: ImageArrays | None,
        callbacks: Callbacks,
        device: torch.device,
        digest: str,
    ) -> None:
        super().__init__(arch, params, optimizer, scheduler, callbacks, device, digest)
        self.net, self.loader, self.test = net, loader, test
        self.epoch = 0
        self.batch_in_epoch = 0
        self.samples_seen = 0
        self.running = {"loss_sum": 0.0, "correct": 0, "seen": 0}

    def restore(self, resume: Mapping[str, Any]) -> None:
        super().restore(resume)
        self.epoch = int(resume["epoch"])
        self.batch_in_epoch = int(resume["batch_in_epoch"])
        self.samples_seen = int(resume["samples_seen"])
        self.running = dict(resume["running"])

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "model": to_cpu(self.net.state_dict()),
            "optimizer": to_cpu(self.optimizer.state_dict()),
            "scheduler": (
                None if self.lr_scheduler is None else to_cpu(self.lr_scheduler.state_dict())
            ),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "samples_seen": self.samples_seen,
            "running": dict(self.running),
        }

    def run(self, total_steps: int) -> TrainResult:
        params, callbacks = self.params, self.callbacks
        every = params.checkpoint_every_steps
        callbacks.on_log(
            f"training {self.arch.name} on {self.loader.num_samples} samples: "
            f"{params.epochs} epoch(s) x {len(self.loader)} step(s), device {self.device}"
            + (f", resuming at step {self.step}" if self.step else "")
        )
        callbacks.on_progress(self.step, total_steps)
        self.net.train()
        while self.epoch < params.epochs:
            if self.batch_in_epoch == 0:
                self.running = {"loss_sum": 0.0, "correct": 0, "seen": 0}
            for x, y in self.loader.batches(self.epoch, self.batch_in_epoch):
                self.stop_if_asked(total_steps)
                self._train_step(x, y, total_steps)
                self.batch_in_epoch += 1
                callbacks.on_progress(self.step, total_steps)
                if every and self.step % every == 0 and self.batch_in_epoch < len(self.loader):
                    callbacks.on_checkpoint(self.checked_state(total_steps))
            self._end_epoch()
        return self._result()

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, total_steps: int) -> None:
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.params.label_smoothing)
        loss_value = self.descend(
            loss, self.net.parameters(), total_steps, where=f" (epoch {self.epoch + 1})"
        )
        n = int(y.shape[0])
        self.samples_seen += n
        self.running["loss_sum"] += loss_value * n
        self.running["correct"] += int((logits.detach().argmax(dim=1) == y).sum().item())
        self.running["seen"] += n

    def _end_epoch(self) -> None:
        seen = max(int(self.running["seen"]), 1)
        entry: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": self.running["loss_sum"] / seen,
            "train_accuracy": self.running["correct"] / seen,
            "lr": float(self.optimizer.param_groups[0]["lr"]),
        }
        if self.test is not None and len(self.test):
            scores = evaluate_network(
                self.net, self.test, self.arch, self.params.batch_size, self.device
            )
            entry["test_loss"] = scores["loss"]
            entry["test_accuracy"] = scores["accuracy"]
        self.history.append(entry)
        for name, value in entry.items():
            if name not in ("epoch", "step"):
                self.callbacks.on_metric(name, float(value), self.step)
        summary = ", ".join(f"{k}={v:.4g}" for k, v in entry.items() if k not in ("epoch", "step"))
        self.callbacks.on_log(f"epoch {self.epoch + 1}/{self.params.epochs}: {summary}")
        self.epoch += 1
        self.batch_in_epoch = 0
        self.callbacks.on_checkpoint(self.checked_state(self.params.epochs * len(self.loader)))

    def _result(self) -> TrainResult:
        last = self.history[-1] if self.history else {}
        metrics = {k: float(v) for k, v in last.items() if k not in ("epoch", "step", "lr")}
        metrics.update(
            steps=float(self.step),
            epochs=float(self.epoch),
            samples_seen=float(self.samples_seen),
            wall_seconds=self.wall_seconds(),
        )
        state_dict = to_cpu(self.net.state_dict())
        self.raise_if_not_finite(state_dict, self.step)
        return TrainResult(
            state_dict=state_dict,
            metrics=metrics,
            history=[dict(h) for h in self.history],
        )


def load_resume_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a training resume state (see ``resumable.read_resume_state``)."""
    return read_resume_state(path, RESUME_FORMAT, "training")
