"""Torch machinery shared by the diffusion-erasure methods.

Kept apart from ``base.py`` so the registry stays importable without torch. Every
method follows the same recipe: copy the parent UNet, choose what may train, take
``steps`` seeded optimizer steps (draws of step ``k`` come from a generator seeded by
``(seed, k)``, so a run is reproducible), then report end-of-run epsilon shifts.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import UNet2DModel

from contracts.ddpm import DiffusionArchitecture, SamplerName
from workers.engine.data import ImageArrays
from workers.engine.diffusion.models import (
    cpu_state_dict,
    epsilon_shift,
    load_unet,
    noise_scheduler,
    predict_noise,
    sample,
    to_model_space,
)
from workers.engine.diffusion.unlearning.base import (
    DiffusionMethodParams,
    DiffusionUnlearnData,
    DiffusionUnlearnResult,
    TrainableSubset,
)
from workers.engine.errors import TrainingStopped
from workers.engine.training import Callbacks
from workers.engine.unlearning.base import UnlearningDiverged
from workers.engine.unlearning.common import resolve_device

_SEED_STRIDE = 1_000_003

# Parameter-name prefixes and fragments of UNet2DModel (see ``select_parameters``).
_CONDITION_PREFIXES = ("class_embedding.",)
_CONDITION_FRAGMENTS = (".time_emb_proj.",)
_TIME_PREFIXES = ("time_embedding.",)
_OUTPUT_PREFIXES = ("conv_norm_out.", "conv_out.")


def reads_condition(name: str) -> bool:
    """True for the parameters through which the class label reaches the features."""
    return name.startswith(_CONDITION_PREFIXES) or any(f in name for f in _CONDITION_FRAGMENTS)


def select_parameters(names: Iterable[str], subset: TrainableSubset) -> list[str]:
    """ESD's trainable subsets, mapped onto UNet2DModel.

    * ``full``: every parameter.
    * ``xattn`` (ESD-x): the layers that read the condition: the class embedding and
      each ResNet block's ``time_emb_proj`` (in Stable Diffusion, the text reaches the
      UNet only through cross-attention, which is what ESD-x trains).
    * ``noxattn`` (ESD-u): everything else, minus the time embedding and the output
      layers, which the original ESD code also freezes in this mode.
    """
    names = list(names)
    if subset == "full":
        return names
    if subset == "xattn":
        return [n for n in names if reads_condition(n)]
    if subset == "noxattn":
        frozen = _TIME_PREFIXES + _OUTPUT_PREFIXES
        return [n for n in names if not reads_condition(n) and not n.startswith(frozen)]
    raise ValueError(f"unknown trainable subset {subset!r}")


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator of step ``step``: every draw of a step comes from it."""
    return torch.Generator().manual_seed((seed * _SEED_STRIDE + step) % 2**63)


def frozen_copy(unet: UNet2DModel) -> UNet2DModel:
    """An eval-mode, gradient-free copy (the teacher that defines the targets)."""
    twin = copy.deepcopy(unet).eval()
    twin.requires_grad_(False)
    return twin


def prepare(
    arch: DiffusionArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    params: DiffusionMethodParams,
    subset: TrainableSubset | list[str] = "full",
) -> tuple[UNet2DModel, list[str], torch.optim.Optimizer, torch.device]:
    """A trainable copy of the parent, the names it may change and an Adam over those.

    Adam without weight decay: a parameter whose gradient stays exactly zero (masked
    by SalUn) is then never moved, which keeps deltas honest.
    """
    device = resolve_device(params.device)
    unet = load_unet(arch, state_dict, device)
    names = [n for n, _ in unet.named_parameters()]
    chosen = list(subset) if isinstance(subset, list) else select_parameters(names, subset)
    if not chosen:
        raise ValueError(f"trainable subset {subset!r} selects no parameters")
    wanted = set(chosen)
    trainable = []
    for name, p in unet.named_parameters():
        p.requires_grad_(name in wanted)
        if name in wanted:
            trainable.append(p)
    unet.train()
    optimizer = torch.optim.Adam(trainable, lr=params.lr)
    return unet, chosen, optimizer, device


@dataclass
class Images:
    """A labelled image set in model space, drawn from with replacement by a generator."""

    x0: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def of(cls, arrays: ImageArrays, arch: DiffusionArchitecture, device: torch.device) -> Images:
        return cls(
            x0=to_model_space(arrays.images, arch).to(device),
            labels=torch.from_numpy(arrays.labels).to(device),
        )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def draw(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self), (n,), generator=g).to(self.x0.device)
        return self.x0[idx], self.labels[idx]


def noisy(
    arch: DiffusionArchitecture, x0: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, t, noise) for clean ``x0`` at uniformly drawn training timesteps."""
    noise = torch.randn(x0.shape, generator=g).to(x0.device)
    t = torch.randint(0, arch.num_train_timesteps, (x0.shape[0],), generator=g).to(x0.device)
    return noise_scheduler(arch).add_noise(x0, noise, t), t, noise


def denoising_mse(
    unet: UNet2DModel,
    arch: DiffusionArchitecture,
    x0: torch.Tensor,
    labels: torch.Tensor,
    g: torch.Generator,
) -> torch.Tensor:
    """The DDPM training loss on ``(x0, labels)`` (mean epsilon MSE)."""
    x_t, t, noise = noisy(arch, x0, g)
    return F.mse_loss(predict_noise(unet, x_t, t, labels), noise)


@torch.no_grad()
def generated_images(
    unet: UNet2DModel,
    arch: DiffusionArchitecture,
    labels: Sequence[int],
    seed: int,
    guidance_scale: float,
    num_inference_steps: int,
    device: torch.device,
    batch_size: int = 64,
    scheduler_name: SamplerName = "ddim",
) -> torch.Tensor:
    """Samples of ``unet`` for ``labels`` in model space (on ``device``)."""
    was_training = unet.training
    unet.eval()
    chunks = []
    try:
        for start in range(0, len(labels), batch_size):
            part = list(labels[start : start + batch_size])
            seeds = [seed * _SEED_STRIDE + start + i for i in range(len(part))]
            chunks.append(
                sample(
                    unet,
                    arch,
                    part,
                    seeds,
                    guidance_scale,
                    num_inference_steps,
                    scheduler_name,
                    device,
                )
            )
    finally:
        unet.train(was_training)
    return torch.cat(chunks).to(device)


@dataclass
class Trajectories:
    """Every intermediate state of guided DDIM runs, with the frozen model's predictions.

    ``x[i, k]`` is image ``i`` before DDIM step ``k`` (at training timestep
    ``timesteps[k]``); ``eps_cond`` / ``eps_uncond`` are the frozen model's conditional
    and null-class predictions there, already computed by classifier-free guidance.
    """

    x: torch.Tensor
    eps_cond: torch.Tensor
    eps_uncond: torch.Tensor
    labels: torch.Tensor
    timesteps: torch.Tensor

    def draw(
        self, n: int, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` random (trajectory, step) states: x_t, t, labels, eps_cond, eps_uncond."""
        count, steps = self.x.shape[:2]
        i = torch.randint(0, count, (n,), generator=g).to(self.x.device)
        k = torch.randint(0, steps, (n,), generator=g).to(self.x.device)
        return (
            self.x[i, k],
            self.timesteps[k],
            self.labels[i],
            self.eps_cond[i, k],
            self.eps_uncond[i, k],
        )


@torch.no_grad()
def record_trajectories(
    unet: UNet2DModel,
    arch: DiffusionArchitecture,
    labels: Sequence[int],
    seed: int,
    guidance_scale: float,
    num_inference_steps: int,
    device: torch.device,
    batch_size: int = 64,
) -> Trajectories:
    """Run guided DDIM from seeded noise and keep every state along the way."""
    xs, conds, unconds, steps = [], [], [], []
    for start in range(0, len(labels), batch_size):
        part = list(labels[start : start + batch_size])
        seeds = [seed * _SEED_STRIDE + start + i for i in range(len(part))]
        bx: list[torch.Tensor] = []
        bc: list[torch.Tensor] = []
        bu: list[torch.Tensor] = []
        bt: list[torch.Tensor] = []

        def keep(
            i: int,
            t: torch.Tensor,
            x: torch.Tensor,
            eps_cond: torch.Tensor,
            eps_uncond: torch.Tensor,
            bx: list[torch.Tensor] = bx,
            bc: list[torch.Tensor] = bc,
            bu: list[torch.Tensor] = bu,
            bt: list[torch.Tensor] = bt,
        ) -> None:
            bx.append(x.clone())
            bc.append(eps_cond.clone())
            bu.append(eps_uncond.clone())
            bt.append(t.clone())

        sample(
            unet,
            arch,
            part,
            seeds,
            guidance_scale,
            num_inference_steps,
            "ddim",
            device,
            on_step=keep,
        )
        xs.append(torch.stack(bx, dim=1))
        conds.append(torch.stack(bc, dim=1))
        unconds.append(torch.stack(bu, dim=1))
        steps = bt
    return Trajectories(
        x=torch.cat(xs),
        eps_cond=torch.cat(conds),
        eps_uncond=torch.cat(unconds),
        labels=torch.as_tensor(list(labels), dtype=torch.long, device=device),
        timesteps=torch.stack(steps).to(device).long(),
    )


def retained_classes(arch: DiffusionArchitecture, data: DiffusionUnlearnData) -> list[int]:
    erased = set(data.forget_labels)
    return [c for c in range(arch.num_classes) if c not in erased]


def other_labels(labels: torch.Tensor, allowed: Sequence[int], g: torch.Generator) -> torch.Tensor:
    """A random label from ``allowed`` for every entry (never one of the erased classes)."""
    pool = torch.as_tensor(list(allowed), dtype=torch.long)
    picks = torch.randint(0, len(pool), labels.shape, generator=g)
    return pool[picks].to(labels.device)


class Guard:
    """Cancellation, progress, NaN detection and metrics around each optimizer step."""

    def __init__(self, method: str, total: int, callbacks: Callbacks, log_every: int = 25):
        self.method, self.total, self.callbacks = method, max(total, 1), callbacks
        self.log_every = log_every
        self.step = 0
        self.started = time.monotonic()
        self.log: list[str] = []
        self.last: dict[str, float] = {}

    def before(self) -> None:
        if self.callbacks.should_stop():
            raise TrainingStopped(f"{self.method} stopped at step {self.step}", step=self.step)

    def after(self, **losses: float) -> None:
        self.step += 1
        for name, value in losses.items():
            if not math.isfinite(value):
                raise UnlearningDiverged(
                    f"{self.method}: {name} became {value} at step {self.step}", step=self.step
                )
        self.last = dict(losses)
        self.callbacks.on_progress(self.step, self.total)
        if self.step % self.log_every == 0 or self.step == self.total:
            for name, value in losses.items():
                self.callbacks.on_metric(f"unlearn/{name}", value, self.step)

    def note(self, message: str) -> None:
        self.log.append(message)
        self.callbacks.on_log(message)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def optimize(
    method: str,
    steps: int,
    seed: int,
    optimizer: torch.optim.Optimizer,
    callbacks: Callbacks,
    loss_fn: Callable[[torch.Generator], dict[str, torch.Tensor]],
    grad_hook: Callable[[], None] | None = None,
) -> Guard:
    """The loop every fine-tuning method shares: ``loss_fn(g)`` returns named terms whose
    sum is minimised; ``grad_hook`` may edit gradients before the step (SalUn's mask)."""
    guard = Guard(method, steps, callbacks)
    for step in range(steps):
        guard.before()
        terms = loss_fn(step_generator(seed, step))
        total = sum(terms.values())
        assert isinstance(total, torch.Tensor)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if grad_hook is not None:
            grad_hook()
        optimizer.step()
        guard.after(loss=float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()})
    return guard


def finish(
    method: str,
    arch: DiffusionArchitecture,
    parent: Mapping[str, torch.Tensor],
    unet: UNet2DModel,
    trained: list[str] | None,
    data: DiffusionUnlearnData,
    params: DiffusionMethodParams,
    guard: Guard,
    extra: dict[str, float] | None = None,
) -> DiffusionUnlearnResult:
    """Package the weights and the cheap end-of-run signals every method reports."""
    state_dict = cpu_state_dict(unet)
    bad = [k for k, v in state_dict.items() if not v.isfinite().all()]
    if bad:
        raise UnlearningDiverged(f"{method}: weights became inf/NaN ({bad[0]})", step=guard.step)
    metrics: dict[str, float] = {"steps": float(guard.step), "seconds": guard.seconds}
    metrics.update({f"final_{k}": v for k, v in guard.last.items()})
    metrics.update(epsilon_shifts(arch, parent, state_dict, data, params))
    metrics.update(extra or {})
    guard.note(
        f"{method}: {guard.step} steps in {guard.seconds:.1f}s; epsilon shift "
        f"forget={metrics['forget_epsilon_shift']:.4g} retain={metrics['retain_epsilon_shift']:.4g}"
    )
    return DiffusionUnlearnResult(
        state_dict=state_dict, trained_keys=trained, metrics=metrics, log=list(guard.log)
    )


def epsilon_shifts(
    arch: DiffusionArchitecture,
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
    data: DiffusionUnlearnData,
    params: DiffusionMethodParams,
) -> dict[str, float]:
    """Mean epsilon-prediction MSE between parent and result, erased vs retained classes."""
    n, seed = params.shift_probe_size, params.seed

    def mean_shift(classes: Sequence[int]) -> float:
        return sum(epsilon_shift(arch, before, after, c, n, seed) for c in classes) / len(classes)

    return {
        "forget_epsilon_shift": mean_shift(data.forget_labels),
        "retain_epsilon_shift": mean_shift(retained_classes(arch, data)),
    }
