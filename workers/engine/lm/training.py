"""Fine-tuning a causal LM on text records: full or LoRA, seeded, resumable, cancellable.

The runner drives this through the engine's ``Callbacks`` (progress, live loss, logs,
checkpoints, cancellation), the same protocol the classifier loop uses. Reproducibility
contract on CPU: the same model, params and records give bit-identical weights, and
resuming from any state passed to ``on_checkpoint`` gives the same final weights as a run
that was never interrupted. A checkpoint holds only the trainable tensors (the adapter,
for LoRA) plus the optimizer, so a LoRA checkpoint stays small.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import AdamW

from contracts.causal_lm import LMTrainParams
from workers.engine.errors import EngineError
from workers.engine.evaluation import resolve_device
from workers.engine.lm.data import Encoded, TextRecord, batch_count, encode, iterate
from workers.engine.lm.models import LanguageModel, attach_lora, is_lora
from workers.engine.resumable import (
    Callbacks,
    ResumableLoop,
    fingerprint,
    read_resume_state,
    save_resume_state,
    to_cpu,
)

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


def _digest(encoded: Encoded) -> str:
    """Fingerprint of what a run trains on (ids and tokens), to guard resumes."""
    return fingerprint(encoded.sample_ids, encoded.input_ids.numpy(), encoded.labels.numpy())


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
        # No architecture key: the caller built (and checked) the model being tuned.
        _Loop.check_resume(resume, None, params, digest)
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


class _Loop(ResumableLoop):
    """A fine-tune's epochs of seeded batches; resumable mid-epoch (the batch order of
    each epoch is seeded, and the torch RNG, which adapter dropout draws from, travels in
    the state). The state keeps only the trainable tensors, so a LoRA one stays small."""

    params: LMTrainParams
    resume_format = RESUME_FORMAT
    run_name = "fine-tune"
    weights_key = "trainable"
    params_name = "fine-tune"
    other_data = "different training records"

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
        super().__init__(None, params, optimizer, None, callbacks, device, digest)
        self.model, self.encoded = model, encoded
        self.epoch = 0
        self.batch_in_epoch = 0
        self.running = {"loss_sum": 0.0, "tokens": 0}

    def restore(self, resume: Mapping[str, Any]) -> None:
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
        super().restore(resume)
        self.epoch = int(resume["epoch"])
        self.batch_in_epoch = int(resume["batch_in_epoch"])
        self.running = dict(resume["running"])

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "trainable": trainable_state(self.model),
            "optimizer": to_cpu(self.optimizer.state_dict()),
            "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "running": dict(self.running),
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
                self.stop_if_asked(total_steps)
                loss = self._train_step(batch, total_steps)
                self.batch_in_epoch += 1
                callbacks.on_progress(self.step, total_steps)
                if self.step % live_every == 0:
                    callbacks.on_metric("train_loss_step", loss, self.step)
                if every and self.step % every == 0 and self.batch_in_epoch < steps_per_epoch:
                    callbacks.on_checkpoint(self.checked_state(total_steps))
            self._end_epoch(total_steps)

    def _train_step(self, batch: dict[str, torch.Tensor], total_steps: int) -> float:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        value = self.descend(
            self.model(**batch).loss,
            [p for p in self.model.parameters() if p.requires_grad],
            total_steps,
            grad_clip=self.params.max_grad_norm,
        )
        # Token-weighted, so the epoch loss is the mean over every trained token.
        tokens = int((batch["labels"][:, 1:] != -100).sum().item())
        self.running["loss_sum"] += value * tokens
        self.running["tokens"] += tokens
        return value

    def _end_epoch(self, total_steps: int) -> None:
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
        self.callbacks.on_checkpoint(self.checked_state(total_steps))

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
