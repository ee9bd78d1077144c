"""Torch machinery the language-model unlearning methods share.

Sequence log-probabilities over answer tokens (the quantity every LLM unlearning loss is
built from), seeded batching of paired encodings, a step guard (cancel, NaN, progress,
retain ceiling), optional LoRA, and the cheap end-of-run numbers every method reports.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.lm.data import IGNORE_INDEX, Encoded, TextRecord, encode
from workers.engine.lm.unlearning.base import (
    LMMethodParams,
    LMUnlearningDiverged,
    UnsupportedRecords,
)
from workers.engine.training import Callbacks

Batch = dict[str, torch.Tensor]


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when there is one, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_all(seed: int) -> torch.Generator:
    """Seed torch's global RNG (dropout) and return a generator for the method's draws."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def frozen_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` as it is now: the reference NPO, DPO and RMU compare
    against. Eval mode, no gradients."""
    ref = copy.deepcopy(model)
    ref.eval()
    ref.requires_grad_(False)
    return ref


# --------------------------------------------------------------------------- batches


def encode_records(
    tokenizer: Any,
    records: Sequence[TextRecord],
    params: LMMethodParams,
    answers: Sequence[str] | None = None,
) -> Encoded:
    return encode(tokenizer, records, params.max_length, answers=answers)


def rows(encoded: Encoded, index: torch.Tensor, device: torch.device) -> Batch:
    """The rows ``index`` of ``encoded``, cut to their longest row, on ``device``."""
    mask = encoded.attention_mask[index]
    width = max(int(mask.sum(dim=1).max().item()), 2)
    return {
        "input_ids": encoded.input_ids[index, :width].to(device),
        "attention_mask": mask[:, :width].to(device),
        "labels": encoded.labels[index, :width].to(device),
    }


def epoch_order(n: int, batch_size: int, seed: int) -> list[torch.Tensor]:
    """Seeded shuffled index batches; the same ``seed`` gives the same batches, so paired
    encodings (an answer and its refusal) can be walked in lockstep."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


class Cycle:
    """Endless seeded batches of an encoding (the retain side of a forget walk)."""

    def __init__(self, encoded: Encoded, batch_size: int, seed: int, device: torch.device):
        self.encoded = encoded
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self._pending: Iterator[torch.Tensor] = iter(())
        self._round = 0

    def next(self) -> Batch:
        index = next(self._pending, None)
        if index is None:
            self._round += 1
            order = epoch_order(len(self.encoded), self.batch_size, self.seed * 7919 + self._round)
            self._pending = iter(order)
            index = next(self._pending)
        return rows(self.encoded, index, self.device)


# --------------------------------------------------------------------------- log-probs


def token_logprobs(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities of the labels (N x L-1) and the mask of scored tokens.

    Only label positions (answers; every token of a plain text) count; prompt and padding
    are masked out.
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE_INDEX
    logits = logits[:, :-1].float()
    logp = -F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        labels.reshape(-1).clamp_min(0),
        reduction="none",
    ).view(labels.shape)
    return logp * mask, mask


def sequence_logprob(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(answer | prompt) per row (summed over answer tokens) and the token counts."""
    logp, mask = token_logprobs(model, batch)
    return logp.sum(dim=1), mask.sum(dim=1).clamp_min(1)


def nll(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean next-token NLL over every answer token of the batch (the usual LM loss)."""
    logp, mask = token_logprobs(model, batch)
    return -logp.sum() / mask.sum().clamp_min(1)


@torch.no_grad()
def answer_nlls(
    model: nn.Module, encoded: Encoded, device: torch.device, batch_size: int = 16
) -> torch.Tensor:
    """Each record's mean answer-token NLL (nats per token), in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(encoded), batch_size):
        index = torch.arange(start, min(start + batch_size, len(encoded)))
        logp, count = sequence_logprob(model, rows(encoded, index, device))
        out.append((-logp / count).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def mean_answer_nll(
    model: nn.Module, encoded: Encoded, device: torch.device, batch_size: int = 16
) -> float:
    """The mean over records of each record's mean answer-token NLL (nats per token)."""
    return float(answer_nlls(model, encoded, device, batch_size).mean()) if len(encoded) else 0.0


def mean_answer_prob(model: nn.Module, encoded: Encoded, device: torch.device) -> float:
    """The mean over records of P(answer | question)^(1/|answer|): the evaluation's
    ``forget_prob`` / ``holdout_prob``, which the verdict compares."""
    return float(torch.exp(-answer_nlls(model, encoded, device)).mean())


def probe(encoded: Encoded, size: int, seed: int) -> Encoded:
    """A seeded subset of ``size`` rows (all of them if fewer)."""
    if len(encoded) <= size:
        return encoded
    generator = torch.Generator().manual_seed(int(seed) + 104729)
    chosen = torch.randperm(len(encoded), generator=generator)[:size].sort().values
    return encoded.subset(chosen.tolist())


# --------------------------------------------------------------------------- LoRA


def attach_lora(model: nn.Module, params: LMMethodParams) -> nn.Module:
    """Wrap ``model`` with a seeded, trainable LoRA adapter when ``params.lora`` asks."""
    if params.lora is None:
        return model
    from transformers import PreTrainedModel

    from workers.engine.lm.models import LMModelError
    from workers.engine.lm.models import attach_lora as attach

    if not isinstance(model, PreTrainedModel):
        raise LMModelError(f"LoRA needs a transformers model, not a {type(model).__name__}")
    return attach(model, params.lora, seed=params.seed)


def detach_lora(model: nn.Module) -> nn.Module:
    """Merge a LoRA adapter back into the weights (a plain model again)."""
    from workers.engine.lm.models import merge_lora

    return merge_lora(model)


# --------------------------------------------------------------------------- the loop


def make_optimizer(
    parameters: Sequence[nn.Parameter] | Iterator[nn.Parameter], params: LMMethodParams
) -> torch.optim.Optimizer:
    trainable = [p for p in parameters if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)


def optimizer_step(
    optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: LMMethodParams
) -> None:
    """zero_grad, backward, optional clip, step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if params.grad_clip is not None:
        grads = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(grads, params.grad_clip)
    optimizer.step()


class LMGuard:
    """Around each optimizer step: cancellation, NaN/inf, progress, periodic loss
    metrics and the optional retain ceiling."""

    def __init__(
        self,
        model: nn.Module,
        retain: Encoded,
        params: LMMethodParams,
        callbacks: Callbacks,
        device: torch.device,
        total_steps: int,
        method: str,
    ) -> None:
        self.model = model
        self.params = params
        self.callbacks = callbacks
        self.device = device
        self.total = max(int(total_steps), 1)
        self.method = method
        self.step = 0
        self.started = time.monotonic()
        self.retain_probe = probe(retain, params.retain_probe_size, params.seed)
        self.log: list[str] = []

    def before(self) -> None:
        if self.callbacks.should_stop():
            raise TrainingStopped(f"{self.method} stopped at step {self.step}", step=self.step)

    def check(self, loss: torch.Tensor, name: str = "loss") -> float:
        """Raise ``LMUnlearningDiverged`` on a non-finite loss (call before ``backward``)."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise LMUnlearningDiverged(
                f"{self.method}: {name} became {value} at step {self.step + 1}",
                step=self.step + 1,
            )
        return value

    def after(self, loss: torch.Tensor | float, name: str = "loss") -> None:
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        self.step += 1
        if not math.isfinite(value):
            raise LMUnlearningDiverged(
                f"{self.method}: {name} became {value} at step {self.step}", step=self.step
            )
        self.callbacks.on_progress(self.step, self.total)
        if self.step % self.params.probe_every_steps == 0 or self.step == self.total:
            self.callbacks.on_metric(f"unlearn/{name}", value, self.step)
            self.check_ceiling()

    def check_ceiling(self) -> None:
        ceiling = self.params.retain_loss_ceiling
        if ceiling is None:
            return
        value = mean_answer_nll(self.model, self.retain_probe, self.device)
        self.callbacks.on_metric("unlearn/retain_probe_nll", value, self.step)
        if not math.isfinite(value) or value > ceiling:
            raise LMUnlearningDiverged(
                f"{self.method}: retain probe NLL {value:.3f} rose above the ceiling "
                f"{ceiling:.3f} at step {self.step}",
                step=self.step,
            )

    def note(self, message: str) -> None:
        self.log.append(message)
        self.callbacks.on_log(message)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


class HoldoutStop:
    """The ``stop_at_holdout`` rule: unlearning is done once the forget answers are no
    more likely (``stop_prob_ratio`` times, per token) than answers about calibration
    people the model never saw, the level a model that never saw the forget people would
    show.

    A fixed learning rate and epoch count either stop short of that level or run past it;
    past it, the forget people become *less* likely than strangers, which a membership
    attack reads as clearly as memorisation. One epoch can cross the level by far, so on
    crossing the rule lands: it bisects (``stop_landing_steps`` times) along the straight
    line from the weights before that epoch to those after it, and keeps the point
    closest to the start that is still at the level. A point at the level that is within
    ``stop_landing_band`` of it is close enough and ends the landing early (each landing
    step costs a scoring of both groups, on SmolLM2 about one optimizer step). Only
    question/answer forget records are compared when there are any (the calibration
    people's records are questions too).
    """

    def __init__(
        self,
        forget: Encoded,
        qa: Sequence[bool],
        calibration: Encoded,
        params: LMMethodParams,
        device: torch.device,
    ) -> None:
        chosen = [i for i, is_qa in enumerate(qa) if is_qa]
        self.forget = forget.subset(chosen) if chosen and len(chosen) < len(qa) else forget
        self.calibration = calibration
        self.ratio = params.stop_prob_ratio
        self.landing_steps = params.stop_landing_steps
        self.band = params.stop_landing_band
        self.device = device
        self.checks = 0
        self.stopped_after: int | None = None  # epochs done when the level was reached
        self.kept = 1.0  # share of the last epoch's update kept after landing
        self.forget_prob = float("nan")
        self.calibration_prob = float("nan")
        self._before: list[torch.Tensor] | None = None  # weights before the current epoch

    def _measure(self, model: nn.Module) -> bool:
        self.checks += 1
        self.forget_prob = mean_answer_prob(model, self.forget, self.device)
        self.calibration_prob = mean_answer_prob(model, self.calibration, self.device)
        return self.forget_prob <= self.ratio * self.calibration_prob

    def _close_enough(self) -> bool:
        """At the level and no further below it than the band: no need to land closer."""
        return self.forget_prob >= self.band * self.ratio * self.calibration_prob

    def reached(self, model: nn.Module, weights: Sequence[nn.Parameter], epochs_done: int) -> bool:
        """Measure both groups now. Not at the level: remember ``weights`` as the next
        epoch's start, False. At the level: land inside the epoch just done, True."""
        if not self._measure(model):
            self._before = [w.detach().clone() for w in weights]
            return False
        self.stopped_after = epochs_done
        if self._before is not None and self.landing_steps and not self._close_enough():
            self._land(model, weights, self._before)
        self._before = None
        return True

    @torch.no_grad()
    def _land(
        self, model: nn.Module, weights: Sequence[nn.Parameter], before: list[torch.Tensor]
    ) -> None:
        after = [w.detach().clone() for w in weights]
        low, high = 0.0, 1.0  # low: not at the level (the last check); high: at it
        best = (self.forget_prob, self.calibration_prob)

        def place(t: float) -> None:
            for w, a, b in zip(weights, before, after, strict=True):
                w.copy_(a + t * (b - a))

        for _ in range(self.landing_steps):
            middle = (low + high) / 2
            place(middle)
            if self._measure(model):
                high, best = middle, (self.forget_prob, self.calibration_prob)
                if self._close_enough():
                    break
            else:
                low = middle
        place(high)
        self.kept = high
        self.forget_prob, self.calibration_prob = best

    def metrics(self) -> dict[str, float]:
        return {
            "stop_checks": float(self.checks),
            "stopped_after_epochs": float(-1 if self.stopped_after is None else self.stopped_after),
            "stop_last_epoch_kept": self.kept,
            "stop_forget_prob": self.forget_prob,
            "stop_calibration_prob": self.calibration_prob,
        }


@dataclass
class Setup:
    """What every iterative method starts from: device, encodings, guard, optimizer."""

    model: nn.Module
    device: torch.device
    forget: Encoded
    retain: Encoded
    guard: LMGuard
    optimizer: torch.optim.Optimizer
    forget_nll_before: float
    retain_nll_before: float
    stop: HoldoutStop | None = None

    def stop_here(self, epochs_done: int) -> bool:
        """True when the ``stop_at_holdout`` level is reached (always False without it);
        the caller ends its epoch loop."""
        if self.stop is None:
            return False
        weights = [p for group in self.optimizer.param_groups for p in group["params"]]
        if not self.stop.reached(self.model, weights, epochs_done):
            return False
        stop = self.stop
        kept = f" ({stop.kept:.0%} of the last one's update kept)" if stop.kept < 1 else ""
        self.guard.note(
            f"{self.guard.method}: stopped after {epochs_done} epoch(s){kept}: forget answers' "
            f"probability {stop.forget_prob:.4f} <= {stop.ratio:g} x the calibration "
            f"people's {stop.calibration_prob:.4f}"
        )
        return True


def setup(
    model: nn.Module,
    tokenizer: Any,
    forget: Sequence[TextRecord],
    retain: Sequence[TextRecord],
    params: LMMethodParams,
    callbacks: Callbacks,
    steps_per_epoch: int,
    method: str,
    trainable: Sequence[nn.Parameter] | None = None,
    calibration: Sequence[TextRecord] | None = None,
) -> Setup:
    """Seed, move to the device, encode, attach LoRA if asked, and build the optimizer.

    ``trainable`` limits the optimizer to some parameters (RMU's few layers); LoRA
    cannot be combined with it. ``calibration`` (records of people never trained on) is
    needed when ``params.stop_at_holdout`` asks for the stop rule.
    """
    if params.stop_at_holdout and not calibration:
        raise UnsupportedRecords(
            f"{method}: stop_at_holdout needs calibration records (people the model never "
            "saw); a deletion run takes them from every other held-out person of the "
            "dataset's test split, which needs at least two held-out people"
        )
    device = resolve_device(params.device)
    seed_all(params.seed)
    model.to(device)
    enc_forget = encode_records(tokenizer, forget, params)
    enc_retain = encode_records(tokenizer, retain, params)
    stop = None
    if params.stop_at_holdout and calibration:
        stop = HoldoutStop(
            enc_forget,
            [r.is_qa for r in forget],
            encode_records(tokenizer, calibration, params),
            params,
            device,
        )
    forget_before = mean_answer_nll(model, enc_forget, device)
    retain_probe = probe(enc_retain, params.retain_probe_size, params.seed)
    retain_before = mean_answer_nll(model, retain_probe, device)
    if trainable is None:
        model = attach_lora(model, params)
        trainable = [p for p in model.parameters() if p.requires_grad]
    model.train()
    total = (params.epochs or 1) * steps_per_epoch
    guard = LMGuard(model, enc_retain, params, callbacks, device, total, method)
    return Setup(
        model,
        device,
        enc_forget,
        enc_retain,
        guard,
        make_optimizer(trainable, params),
        forget_before,
        retain_before,
        stop,
    )


def start(
    method: Any,
    model: nn.Module,
    tokenizer: Any,
    data: Any,
    params: LMMethodParams,
    callbacks: Callbacks,
    trainable: Sequence[nn.Parameter] | None = None,
) -> Setup:
    """``setup`` for a method that takes one step per forget batch (every iterative one)."""
    steps = -(-len(data.forget) // params.batch_size)
    return setup(
        model,
        tokenizer,
        data.forget,
        data.retain,
        params,
        callbacks,
        steps,
        method.name,
        trainable=trainable,
        calibration=data.calibration,
    )


def finish(run: Setup, params: LMMethodParams) -> tuple[nn.Module, dict[str, float]]:
    """Merge LoRA, switch to eval, and measure the cheap before/after numbers."""
    model = detach_lora(run.model) if params.lora is not None else run.model
    model.eval()
    model.requires_grad_(True)
    forget_after = mean_answer_nll(model, run.forget, run.device)
    retain_after = mean_answer_nll(model, run.guard.retain_probe, run.device)
    metrics = {
        "forget_nll_before": run.forget_nll_before,
        "forget_nll": forget_after,
        "retain_probe_nll_before": run.retain_nll_before,
        "retain_probe_nll": retain_after,
        "steps": float(run.guard.step),
        "seconds": run.guard.seconds,
    }
    if run.stop is not None:
        metrics.update(run.stop.metrics())
    return model, metrics


LossFn = Any  # Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def forget_walk(
    run: Setup, params: LMMethodParams, epochs: int, loss_fn: LossFn, name: str
) -> None:
    """``epochs`` seeded passes over the forget set, one optimizer step per batch.

    ``loss_fn(index)`` gets the forget rows of the batch and returns the loss and its
    named parts (logged as metrics every ``probe_every_steps``). With ``stop_at_holdout``
    the walk ends early (even before its first step) once the forget answers reach the
    calibration people's level.
    """
    if run.stop_here(0):
        return
    for epoch in range(epochs):
        parts_sum: dict[str, float] = {}
        batches = epoch_order(len(run.forget), params.batch_size, params.seed + epoch)
        for index in batches:
            run.guard.before()
            loss, parts = loss_fn(index)
            run.guard.check(loss)
            optimizer_step(run.optimizer, loss, params)
            run.guard.after(loss)
            for key, value in parts.items():
                parts_sum[key] = parts_sum.get(key, 0.0) + value
        means = ", ".join(f"{k} {v / len(batches):.4f}" for k, v in sorted(parts_sum.items()))
        suffix = f" ({means})" if means else ""
        run.guard.note(f"{name}: epoch {epoch + 1}/{epochs} done{suffix}")
        for key, value in parts_sum.items():
            run.guard.callbacks.on_metric(f"unlearn/{key}", value / len(batches), run.guard.step)
        if run.stop_here(epoch + 1):
            return


def refusals_for(records: Sequence[TextRecord], answers: Sequence[str], seed: int) -> list[str]:
    """One refusal per forget record, drawn (seeded) from ``answers``; the records must be
    question/answer pairs (there is nothing to refuse in a plain text)."""
    plain = [r.sample_id for r in records if not r.is_qa]
    if plain:
        raise UnsupportedRecords(
            f"the IdK methods answer questions with a refusal; records {plain[:5]} are plain "
            "text with no question (use npo, simnpo, grad_diff or rmu for those)"
        )
    generator = torch.Generator().manual_seed(int(seed) + 15485863)
    picks = torch.randint(len(answers), (len(records),), generator=generator).tolist()
    return [answers[i] for i in picks]


# --------------------------------------------------------------------------- activations


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of decoder blocks of a HF causal LM (``model.layers`` on Llama-likes,
    ``transformer.h`` on GPT-2-likes): the longest ModuleList named ``layers`` or ``h``."""
    best: nn.ModuleList | None = None
    for name, module in model.named_modules():
        named = isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in {"layers", "h"}
        if named and (best is None or len(module) > len(best)):
            best = module
    if best is None:
        raise EngineError(
            f"cannot find the decoder layers of {type(model).__name__} (no ModuleList "
            "named 'layers' or 'h')"
        )
    return best


class _Stop(Exception):
    """Raised by a hook once the wanted activations are captured: the layers above are
    not needed."""


def layer_output(model: nn.Module, block: nn.Module, batch: Batch) -> torch.Tensor:
    """The hidden states ``block`` outputs on ``batch`` (N x L x d); the forward stops
    right after that block."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _Stop

    handle = block.register_forward_hook(hook)
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    except _Stop:
        pass
    finally:
        handle.remove()
    return captured[0]


def answer_positions(batch: Batch) -> tuple[Batch, torch.Tensor]:
    """The batch and a mask of the positions whose next token is scored (the states that
    produce an answer; every position of a plain text but the last)."""
    mask = torch.zeros_like(batch["labels"], dtype=torch.bool)
    mask[:, :-1] = batch["labels"][:, 1:] != IGNORE_INDEX
    return batch, mask
