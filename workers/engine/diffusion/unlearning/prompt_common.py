"""Shared torch machinery of the fine-tuning methods on prompt-conditioned models.

In a ``UNet2DConditionModel`` the text reaches the image only through the
cross-attention layers (``attn2``), so ESD's subsets mean here what they mean in the
paper: ``xattn`` (ESD-x) trains ``attn2``, ``noxattn`` (ESD-u) everything else but the
time embedding and the output layers, ``full`` all.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from workers.engine.diffusion.models import cpu_state_dict
from workers.engine.diffusion.prompted import PromptModel, sample_prompts
from workers.engine.diffusion.unlearning.base import (
    ConceptUnlearnData,
    DiffusionMethodParams,
    DiffusionUnlearnResult,
    PromptSubset,
)
from workers.engine.diffusion.unlearning.common import Guard
from workers.engine.unlearning.base import UnlearningDiverged

_FROZEN_PREFIXES = ("time_embedding.", "conv_norm_out.", "conv_out.")


def select_prompt_parameters(names: Iterable[str], subset: PromptSubset) -> list[str]:
    names = list(names)
    if subset == "full":
        return names
    if subset == "xattn":
        return [n for n in names if ".attn2." in n]
    if subset == "kv":
        return [n for n in names if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]
    if subset == "noxattn":
        return [n for n in names if ".attn2." not in n and not n.startswith(_FROZEN_PREFIXES)]
    raise ValueError(f"unknown trainable subset {subset!r}")


def trainable_copy(
    model: PromptModel, params: DiffusionMethodParams, subset: PromptSubset
) -> tuple[torch.nn.Module, list[str], torch.optim.Optimizer]:
    """A copy of the model's UNet with only ``subset`` trainable (the model stays the
    frozen teacher), and Adam over those parameters."""
    unet = copy.deepcopy(model.unet)
    names = [n for n, _ in unet.named_parameters()]
    chosen = select_prompt_parameters(names, subset)
    wanted = set(chosen)
    trainable = []
    for name, p in unet.named_parameters():
        p.requires_grad_(name in wanted)
        if name in wanted:
            trainable.append(p)
    unet.train()
    return unet, chosen, torch.optim.Adam(trainable, lr=params.lr)


@dataclass
class PromptTrajectories:
    """States x_t of the frozen model's guided samples with both predictions there."""

    x_t: torch.Tensor
    t: torch.Tensor
    prompt: torch.Tensor  # index into the erased prompts
    eps_cond: torch.Tensor
    eps_uncond: torch.Tensor

    def draw(self, n: int, g: torch.Generator, device: torch.device) -> tuple[Any, ...]:
        pick = torch.randint(0, len(self.t), (n,), generator=g)
        return tuple(
            v[pick].to(device)
            for v in (self.x_t, self.t, self.prompt, self.eps_cond, self.eps_uncond)
        )


@torch.no_grad()
def record_prompt_trajectories(
    model: PromptModel,
    prompts: Sequence[str],
    per_prompt: int,
    seed: int,
    guidance_scale: float,
    ddim_steps: int,
    batch_size: int = 16,
) -> PromptTrajectories:
    """Every intermediate state of ``per_prompt`` guided DDIM runs per prompt (CPU)."""
    keep: dict[str, list[torch.Tensor]] = {k: [] for k in ("x", "t", "p", "c", "u")}
    jobs = [(j, i) for j in range(len(prompts)) for i in range(per_prompt)]
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        index = torch.tensor([j for j, _ in chunk])

        def hook(i: int, t: Any, x: Any, eps_c: Any, eps_u: Any, index: Any = index) -> None:
            keep["x"].append(x.cpu())
            keep["t"].append(torch.full((len(x),), int(t), dtype=torch.long))
            keep["p"].append(index)
            keep["c"].append(eps_c.cpu())
            keep["u"].append(eps_u.cpu())

        sample_prompts(
            model,
            [prompts[j] for j, _ in chunk],
            [""] * len(chunk),
            [seed * 7919 + j * 100_003 + i for j, i in chunk],
            guidance_scale,
            ddim_steps,
            "ddim",
            on_step=hook,
            decode=False,
        )
    return PromptTrajectories(
        x_t=torch.cat(keep["x"]),
        t=torch.cat(keep["t"]),
        prompt=torch.cat(keep["p"]),
        eps_cond=torch.cat(keep["c"]),
        eps_uncond=torch.cat(keep["u"]),
    )


@torch.no_grad()
def prompt_shift(
    model: PromptModel, after: torch.nn.Module, prompts: Sequence[str], n: int, seed: int
) -> float:
    """Mean MSE between the frozen model's and ``after``'s noise predictions for the
    prompts, on fixed noisy inputs (a cheap signal, as for ddpm)."""
    if not prompts:
        return 0.0
    g = torch.Generator().manual_seed(seed)
    side = model.latent_size
    x = torch.randn(n, model.latent_channels, side, side, generator=g).to(model.device)
    t = torch.randint(0, model.num_train_timesteps, (n,), generator=g).to(model.device)
    was_training = after.training
    after.eval()
    total = 0.0
    for prompt in prompts:
        ctx = model.encode([prompt] * n)
        a = model.unet(x, t, encoder_hidden_states=ctx).sample
        b = after(x, t, encoder_hidden_states=ctx).sample
        total += float(F.mse_loss(a, b))
    after.train(was_training)
    return total / len(prompts)


def finish_prompt(
    method: str,
    model: PromptModel,
    unet: torch.nn.Module,
    trained: list[str],
    data: ConceptUnlearnData,
    params: DiffusionMethodParams,
    guard: Guard,
) -> DiffusionUnlearnResult:
    state_dict = cpu_state_dict(unet)
    bad = [k for k, v in state_dict.items() if not v.isfinite().all()]
    if bad:
        raise UnlearningDiverged(f"{method}: weights became inf/NaN ({bad[0]})", step=guard.step)
    n, seed = params.shift_probe_size, params.seed
    metrics: dict[str, float] = {"steps": float(guard.step), "seconds": guard.seconds}
    metrics.update({f"final_{k}": v for k, v in guard.last.items()})
    metrics["forget_epsilon_shift"] = prompt_shift(model, unet, data.prompts, n, seed)
    metrics["retain_epsilon_shift"] = prompt_shift(model, unet, data.preserve, n, seed)
    guard.note(
        f"{method}: {guard.step} steps in {guard.seconds:.1f}s; epsilon shift "
        f"erased={metrics['forget_epsilon_shift']:.4g} "
        f"preserved={metrics['retain_epsilon_shift']:.4g}"
    )
    return DiffusionUnlearnResult(
        state_dict=state_dict, trained_keys=trained, metrics=metrics, log=list(guard.log)
    )
