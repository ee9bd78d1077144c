"""Fine-tuning a causal LM on text records: full or LoRA, seeded, resumable, cancellable.

The runner drives this through the engine's ``Callbacks`` (progress, live loss, logs,
checkpoints, cancellation), the same protocol the classifier loop uses. Reproducibility
contract on CPU: the same model, params and records give bit-identical weights, and
resuming from any state passed to ``on_checkpoint`` gives the same final weights as a run
that was never interrupted. A checkpoint holds only the trainable tensors (the adapter,
for LoRA) plus the optimizer, so a LoRA checkpoint stays small.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import AdamW

from contracts.causal_lm import LMTrainParams
from workers.engine.errors import EngineError, TrainingDiverged, TrainingStopped
from workers.engine.evaluation import resolve_device
from workers.engine.lm.data import Encoded, TextRecord, batch_count, encode, iterate
from workers.engine.lm.models import LanguageModel, attach_lora, is_lora
from workers.engine.resumable import read_resume_state, save_resume_state
from workers.engine.training import Callbacks

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "Callbacks",
    "LMTrainResult",
    "finetune",
    "load_resume_state",
    "save_resume_state",
    "trainable_state",
]

RESUME_FORMAT = "expunge.lm_finetune_resume/1"
# Params that may differ between the interrupted run and its resumption.
_RESUMABLE_CHANGES = {"device", "checkpoint_every_steps"}


@dataclass
class LMTrainResult:
    """The fine-tuned model (a peft model for LoRA), summary metrics and per-epoch history."""

    model: Any
    metrics: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    # The exact samples trained on: the version's lineage records them.
    train_sample_ids: list[str] = field(default_factory=list)


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of the parameters that train (all of them, or only the adapter)."""
    return {
        name: p.detach().to("cpu", copy=True)
        for name, p in model.named_parameters()
        if p.requires_grad
    }


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _digest(encoded: Encoded) -> str:
    """Fingerprint of what a run trains on (ids and tokens), to guard resumes."""
    digest = hashlib.sha256()
    digest.update("\n".join(encoded.sample_ids).encode())
    digest.update(encoded.input_ids.numpy().tobytes())
    digest.update(encoded.labels.numpy().tobytes())
    return digest.hexdigest()


def _params_key(params: LMTrainParams) -> dict[str, Any]:
    return params.model_dump(mode="json", exclude=_RESUMABLE_CHANGES)


def _check_resume(resume: dict[str, Any], params: LMTrainParams, digest: str) -> None:
    if resume.get("format") != RESUME_FORMAT:
        raise EngineError(f"not a fine-tune resume state (format {resume.get('format')!r})")
    if resume.get("params") != _params_key(params):
        raise EngineError("resume state was made with different fine-tune params")
    if resume.get("data_digest") != digest:
        raise EngineError("resume state was made for different training records")


def finetune(
    model: LanguageModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    params: LMTrainParams,
    callbacks: Callbacks | None = None,
    resume: dict[str, Any] | None = None,
) -> LMTrainResult:
    """Fine-tune ``model`` on ``records`` with AdamW and the next-token loss.

    With ``params.lora`` a seeded adapter is attached first (unless ``model`` already is
    a LoRA model) and only it trains; the result's ``model`` is then the peft model. The
    model is trained in place and left in eval mode; the global torch RNG is left as it
    was found.
    """
    callbacks = callbacks or Callbacks()
    device = resolve_device(params.device)
    encoded = encode(tokenizer, list(records), params.max_length)
    digest = _digest(encoded)
    if resume is not None:
        _check_resume(resume, params, digest)
    steps_per_epoch = batch_count(len(encoded), params.batch_size)
    total_steps = params.epochs * steps_per_epoch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        if params.lora is not None and not is_lora(model):
            model = attach_lora(model, params.lora, seed=params.seed)
        model.to(device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise EngineError("the model has no trainable parameters")
        optimizer = AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
        loop = _Loop(model, params, encoded, optimizer, callbacks, device, digest)
        if resume is not None:
            loop.restore(resume)
        loop.run(total_steps, steps_per_epoch)
    model.eval()
    return LMTrainResult(
        model=model,
        metrics=loop.metrics(),
        history=[dict(h) for h in loop.history],
        train_sample_ids=list(encoded.sample_ids),
    )


class _Loop:
    """The mutable state of one fine-tune, so that it can be snapshotted at any step."""

    def __init__(
        self,
        model: torch.nn.Module,
        params: LMTrainParams,
        encoded: Encoded,
        optimizer: AdamW,
        callbacks: Callbacks,
        device: torch.device,
        digest: str,
    ) -> None:
        self.model, self.params, self.encoded = model, params, encoded
        self.optimizer, self.callbacks, self.device, self.digest = (
            optimizer,
            callbacks,
            device,
            digest,
        )
        self.epoch = 0
        self.batch_in_epoch = 0
        self.step = 0
        self.running = {"loss_sum": 0.0, "tokens": 0}
        self.history: list[dict[str, Any]] = []
        self.wall_before = 0.0
        self.started = time.perf_counter()

    def restore(self, resume: dict[str, Any]) -> None:
        params = dict(self.model.named_parameters())
        weights = resume["trainable"]
        missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
        unknown = [n for n in weights if n not in params]
        if missing or unknown:
            raise EngineError(
                "resume state does not fit the model "
                f"(missing {missing[:3]}, unexpected {unknown[:3]})"
            )
        with torch.no_grad():
            for name, tensor in weights.items():
                params[name].copy_(tensor)
        self.optimizer.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["torch_rng"])
        self.epoch = int(resume["epoch"])
        self.batch_in_epoch = int(resume["batch_in_epoch"])
        self.step = int(resume["step"])
        self.running = dict(resume["running"])
        self.history = [dict(h) for h in resume["history"]]
        self.wall_before = float(resume["wall_seconds"])

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where the loop is now."""
        weights = trainable_state(self.model)
        bad = [n for n, t in weights.items() if not t.isfinite().all()]
        if bad:
            raise TrainingDiverged(
                f"fine-tune diverged: weights became inf/NaN by step {self.step} ({bad[0]}); "
                f"try a lower learning rate than {self.params.lr}",
                self.step,
            )
        return {
            "format": RESUME_FORMAT,
            "params": _params_key(self.params),
            "data_digest": self.digest,
            "trainable": weights,
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "running": dict(self.running),
            "history": [dict(h) for h in self.history],
            "wall_seconds": self.wall_seconds(),
        }

    def run(self, total_steps: int, steps_per_epoch: int) -> None:
        params, callbacks = self.params, self.callbacks
        every = params.checkpoint_every_steps
        # Live loss about 50 times a run, whatever its length.
        live_every = max(1, total_steps // 50)
        callbacks.on_log(
            f"fine-tuning on {len(self.encoded)} records "
            f"({'LoRA' if params.lora else 'full'}): {params.epochs} epoch(s) x "
            f"{steps_per_epoch} step(s), device {self.device}"
            + (f", resuming at step {self.step}" if self.step else "")
        )
        callbacks.on_progress(self.step, total_steps)
        self.model.train()
        while self.epoch < params.epochs:
            if self.batch_in_epoch == 0:
                self.running = {"loss_sum": 0.0, "tokens": 0}
            batches = iterate(
                self.encoded,
                params.batch_size,
                seed=params.seed + self.epoch,
                skip_batches=self.batch_in_epoch,
            )
            for batch in batches:
                if callbacks.should_stop():
                    raise TrainingStopped(
                        f"fine-tune stopped at step {self.step}/{total_steps}", self.step
                    )
                loss = self._train_step(batch, total_steps)
                self.batch_in_epoch += 1
                callbacks.on_progress(self.step, total_steps)
                if self.step % live_every == 0:
                    callbacks.on_metric("train_loss_step", loss, self.step)
                if every and self.step % every == 0 and self.batch_in_epoch < steps_per_epoch:
                    callbacks.on_checkpoint(self.state())
            self._end_epoch()

    def _train_step(self, batch: dict[str, torch.Tensor], total_steps: int) -> float:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        loss = self.model(**batch).loss
        value = float(loss.item())
        if not math.isfinite(value):
            # Checked before backward so the step that revealed it is never applied.
            raise TrainingDiverged(
                f"fine-tune diverged: loss is {value} at step {self.step + 1}/{total_steps}; "
                f"try a lower learning rate than {self.params.lr}",
                self.step + 1,
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.params.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad],
                self.params.max_grad_norm,
            )
        self.optimizer.step()
        self.step += 1
        # Token-weighted, so the epoch loss is the mean over every trained token.
        tokens = int((batch["labels"][:, 1:] != -100).sum().item())
        self.running["loss_sum"] += value * tokens
        self.running["tokens"] += tokens
        return value

    def _end_epoch(self) -> None:
        tokens = max(int(self.running["tokens"]), 1)
        entry = {
            "epoch": self.epoch + 1,
            "step": self.step,
            "train_loss": self.running["loss_sum"] / tokens,
        }
        self.history.append(entry)
        self.callbacks.on_metric("train_loss", float(entry["train_loss"]), self.step)
        self.callbacks.on_log(
            f"epoch {self.epoch + 1}/{self.params.epochs}: train_loss={entry['train_loss']:.4g}"
        )
        self.epoch += 1
        self.batch_in_epoch = 0
        self.callbacks.on_checkpoint(self.state())

    def metrics(self) -> dict[str, float]:
        last = self.history[-1] if self.history else {}
        return {
            "train_loss": float(last.get("train_loss", float("nan"))),
            "steps": float(self.step),
            "epochs": float(self.epoch),
            "train_records": float(len(self.encoded)),
            "trainable_parameters": float(
                sum(p.numel() for p in self.model.parameters() if p.requires_grad)
            ),
            "wall_seconds": self.wall_seconds(),
        }


def load_resume_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a fine-tune resume state (see ``resumable.read_resume_state``)."""
    return read_resume_state(path, RESUME_FORMAT, "fine-tune")
