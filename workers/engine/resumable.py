"""What every resumable training loop of the engine shares, written once.

A loop (the classifier's epochs, the denoisers' steps) is an object whose state can be
snapshotted after any step and handed to ``Callbacks.on_checkpoint``; a later attempt
passes that state back and continues bit for bit on CPU. The snapshot starts with a
header (format, architecture, params, data digest) so a state is never applied to
another run; weights are checked finite before they leave the loop; the loop polls
``should_stop`` before every step and takes one optimisation step the same way
(divergence refused before the update is applied). A subclass says how one step
trains, what else its state holds and how it iterates.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel

from workers.engine.data import ImageArrays
from workers.engine.errors import EngineError, TrainingDiverged, TrainingStopped


class Callbacks:
    """Hooks the training loop calls; every method is a no-op until a runner overrides it."""

    def on_progress(self, step: int, total_steps: int) -> None:
        """Called after every optimizer step; keep it cheap (rate-limit in the override)."""

    def on_log(self, message: str) -> None:
        """One human-readable line (start, each epoch end)."""

    def on_metric(self, name: str, value: float, step: int) -> None:
        """One scalar at a global step (per epoch: losses, accuracies, lr)."""

    def should_stop(self) -> bool:
        """Polled before every step; True makes the loop raise ``TrainingStopped``."""
        return False

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        """A resumable state (CPU tensors, safe to keep); pass it back as ``resume=``."""


def to_cpu(obj: Any) -> Any:
    """Deep copy with every tensor detached and cloned to CPU (a snapshot, not a view)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def fingerprint(sample_ids: Sequence[str], *arrays: np.ndarray) -> str:
    """SHA-256 of sample ids and the arrays a run trains on, to guard resumes: one
    recipe, so every loop's digest changes exactly when its training data does."""
    digest = hashlib.sha256()
    digest.update("\n".join(sample_ids).encode())
    for array in arrays:
        digest.update(array.tobytes())
    return digest.hexdigest()


def data_digest(arrays: ImageArrays) -> str:
    """Fingerprint of which samples (ids and labels) a run trains on, to guard resumes."""
    return fingerprint(arrays.sample_ids, arrays.labels)


class ResumableLoop:
    """The mutable state of one training run, snapshotable after any step.

    Subclasses set ``resume_format`` (the snapshot's format tag), ``run_name`` (how a
    refused resume state names the run) and ``resumable_changes`` (params that may differ between an
    interrupted run and its resumption), and extend ``state``/``restore``. A loop whose
    state keeps its weights under another key than ``"model"`` (the LM fine-tune keeps
    only the trainable tensors) sets ``weights_key``; ``params_name`` and ``other_data``
    are the words a refused resume uses for the params and the data.
    """

    resume_format: ClassVar[str]
    run_name: ClassVar[str] = "training"
    resumable_changes: ClassVar[frozenset[str]] = frozenset({"device", "checkpoint_every_steps"})
    weights_key: ClassVar[str] = "model"
    params_name: ClassVar[str] = "training"
    other_data: ClassVar[str] = "a different training set"

    def __init__(
        self,
        arch: BaseModel | None,
        params: Any,
        optimizer: torch.optim.Optimizer,
        lr_scheduler: Any,
        callbacks: Callbacks,
        device: torch.device,
        digest: str,
    ) -> None:
        self.arch, self.params = arch, params
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.callbacks, self.device, self.digest = callbacks, device, digest
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.wall_before = 0.0
        self.started = time.perf_counter()

    # ----------------------------------------------------------------- resume states

    @classmethod
    def params_key(cls, params: BaseModel) -> dict[str, Any]:
        return params.model_dump(mode="json", exclude=set(cls.resumable_changes))

    @staticmethod
    def arch_key(arch: BaseModel | None) -> dict[str, Any] | None:
        """The architecture a state was made for (``None`` for a loop that trains a model
        it was handed, e.g. a fine-tune whose base the caller already checked)."""
        return None if arch is None else arch.model_dump(mode="json")

    @classmethod
    def check_resume(
        cls, resume: Mapping[str, Any], arch: BaseModel | None, params: BaseModel, digest: str
    ) -> None:
        """Refuse a resume state made by another kind of loop or for another run."""
        if resume.get("format") != cls.resume_format:
            raise EngineError(
                f"not a {cls.run_name} resume state (format {resume.get('format')!r})"
            )
        if resume.get("arch") != cls.arch_key(arch):
            raise EngineError("resume state was made for a different architecture")
        if resume.get("params") != cls.params_key(params):
            raise EngineError(f"resume state was made with different {cls.params_name} params")
        if resume.get("data_digest") != digest:
            raise EngineError(f"resume state was made for {cls.other_data}")

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the loop is now (subclasses add
        their weights, optimiser and counters)."""
        return {
            "format": self.resume_format,
            "arch": self.arch_key(self.arch),
            "params": self.params_key(self.params),
            "data_digest": self.digest,
            "step": self.step,
            "history": to_cpu(self.history),
            "wall_seconds": self.wall_seconds(),
        }

    def restore(self, resume: Mapping[str, Any]) -> None:
        self.step = int(resume["step"])
        self.history = [dict(h) for h in resume["history"]]
        self.wall_before = float(resume["wall_seconds"])

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    # ----------------------------------------------------------------- one step

    def stop_if_asked(self, total_steps: int) -> None:
        if self.callbacks.should_stop():
            raise TrainingStopped(f"training stopped at step {self.step}/{total_steps}", self.step)

    def descend(
        self,
        loss: torch.Tensor,
        parameters: Any,
        total_steps: int,
        where: str = "",
        grad_clip: float | None = None,
    ) -> float:
        """One optimisation step on ``loss``; its value. A non-finite loss is refused
        before backward, so the step that revealed it is never applied."""
        value = float(loss.item())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"training diverged: loss is {value} at step "
                f"{self.step + 1}/{total_steps}{where}; "
                f"try a lower learning rate than {self.params.lr}",
                self.step + 1,
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        self.optimizer.step()
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        self.step += 1
        return value

    # ----------------------------------------------------------------- finite weights

    def raise_if_not_finite(self, weights: Mapping[str, torch.Tensor], total_steps: int) -> None:
        bad = [k for k, t in weights.items() if t.is_floating_point() and not t.isfinite().all()]
        if bad:
            raise TrainingDiverged(
                f"training diverged: weights became inf/NaN by step "
                f"{self.step}/{total_steps} ({bad[0]}{' and others' if len(bad) > 1 else ''}); "
                f"try a lower learning rate than {self.params.lr}",
                self.step,
            )

    def checked_state(self, total_steps: int) -> dict[str, Any]:
        """A snapshot, refusing to hand out weights that are already inf/NaN.

        A finite loss does not prove finite weights: the update after it may overflow.
        Checking here (every N steps, and once at the end) is cheap compared with
        scanning the weights after every step, and no non-finite state escapes.
        """
        state = self.state()
        self.raise_if_not_finite(state[self.weights_key], total_steps)
        return state


def save_resume_state(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Persist a resume state atomically (tensors and plain containers only)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        torch.save(state, tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def read_resume_state(path: str | os.PathLike[str], fmt: str, what: str) -> dict[str, Any]:
    """Load a resume state of format ``fmt`` (``what`` names it in errors);
    ``weights_only=True`` so a tampered file cannot run code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise EngineError(f"not a readable {what} resume state: {path} ({exc})") from exc
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise EngineError(f"not a {what} resume state: {path}")
    return state
