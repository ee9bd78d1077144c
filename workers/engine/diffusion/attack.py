"""Robustness attacks on erasure: optimise the conditioning to bring a concept back.

In the spirit of UnlearnDiffAtk (Zhang et al., "To Generate or Not? Safety-Driven
Unlearned Diffusion Models Are Still Easy to Generate Unsafe Images ... For Now",
ECCV 2024, arXiv:2310.11868): the attacker keeps the erased model frozen and searches
the *conditioning* for an input that makes it denoise images of the erased concept
again. UnlearnDiffAtk optimises prompt tokens with the model's own denoising loss on a
target image as the objective (the diffusion model as its own classifier), so no
external classifier is in the loop. A class-conditional UNet has no prompt: what the
attacker controls is the class-embedding vector, so we optimise one free vector per
erased class, started at the erased class's own row, to minimise

    E_{x0 ~ real images of the class, t, eps} || eps_theta(x_t, t, e) - eps ||^2,

then generate with that vector and let the judge look. **Attack success rate** is the
share of those images the judge classifies as the erased class. One universal vector
per class (not one per image, as UnlearnDiffAtk does per prompt), so it is a weaker
attacker than the paper's; a low rate here is necessary, not sufficient.

A prompt-conditioned model (``prompt_embedding_attack``) is attacked the same way one
level up: the free variable is the erased prompt's token embeddings (the frozen text
encoder's output the UNet's cross-attention reads), started at the erased caption's own
encoding — the continuous relaxation of UnlearnDiffAtk's token search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from contracts.ddpm import DiffusionArchitecture, SamplerName
from workers.engine.data import ImageArrays
from workers.engine.diffusion.judge import Judge
from workers.engine.diffusion.models import (
    load_unet,
    noise_scheduler,
    predict_noise,
    sample,
    to_model_space,
    to_uint8,
)
from workers.engine.diffusion.prompted import PromptModel, sample_prompts
from workers.engine.errors import EngineError
from workers.engine.unlearning.common import resolve_device


class _SwappedEmbedding(torch.nn.Module):
    """The model's class embedding, except that label ``index`` maps to ``vector``."""

    def __init__(self, base: torch.nn.Embedding, index: int, vector: torch.Tensor) -> None:
        super().__init__()
        self.base, self.index, self.vector = base, index, vector

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        is_adv = labels == self.index
        out = self.base(torch.where(is_adv, torch.zeros_like(labels), labels))
        return torch.where(is_adv.unsqueeze(-1), self.vector.to(out.dtype), out)


def _optimise(
    vector: torch.Tensor,
    x0_all: torch.Tensor,
    noise_schedule: Any,
    num_train_timesteps: int,
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> float:
    """Adam on ``vector`` alone: the denoising loss of the frozen model on real images of
    the target class, conditioned through ``predict(x_t, t)``. Returns the final loss."""
    device = x0_all.device
    optimizer = torch.optim.Adam([vector], lr=lr)
    g = torch.Generator().manual_seed(seed)
    loss = torch.zeros(())
    for _ in range(steps):
        idx = torch.randint(0, len(x0_all), (batch_size,), generator=g).to(device)
        x0 = x0_all[idx]
        noise = torch.randn(x0.shape, generator=g).to(device)
        t = torch.randint(0, num_train_timesteps, (batch_size,), generator=g).to(device)
        loss = F.mse_loss(predict(noise_schedule.add_noise(x0, noise, t), t), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


class _Tally:
    """Per-class and overall rates of the attacked and the plain conditioning."""

    def __init__(self) -> None:
        self.per_class: dict[int, float] = {}
        self.baseline: dict[int, float] = {}
        self.losses: dict[int, float] = {}
        self.hits = self.base_hits = self.total = 0
        self.started = time.perf_counter()

    def add(self, c: int, adv_pred: np.ndarray, plain_pred: np.ndarray, loss: float) -> None:
        self.per_class[c] = float(np.mean(adv_pred == c))
        self.baseline[c] = float(np.mean(plain_pred == c))
        self.losses[c] = loss
        self.hits += int(np.sum(adv_pred == c))
        self.base_hits += int(np.sum(plain_pred == c))
        self.total += len(adv_pred)

    def result(self, kind: str, steps: int, lr: float, samples: int) -> dict[str, Any]:
        return {
            "attack": kind,
            "attack_success_rate": self.hits / self.total,
            "baseline_forget_rate": self.base_hits / self.total,
            "per_class_success": {str(k): v for k, v in self.per_class.items()},
            "final_loss": {str(k): v for k, v in self.losses.items()},
            "steps": steps,
            "lr": lr,
            "samples_per_class": samples,
            "seconds": time.perf_counter() - self.started,
        }


def _check(classes: Sequence[int], steps: int, samples_per_class: int) -> None:
    if not classes:
        raise EngineError("the attack needs at least one erased class")
    if steps < 0 or samples_per_class < 1:
        raise EngineError("attack steps must be >= 0 and samples_per_class >= 1")


def _targets(real: ImageArrays, c: int, arch: Any, device: torch.device) -> torch.Tensor:
    targets = real.subset(real.labels == c)
    if len(targets) == 0:
        raise EngineError(f"the attack needs real images of class {c}")
    return to_model_space(targets.images, arch).to(device)


def embedding_attack(
    arch: DiffusionArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    judge: Judge,
    forget_labels: Sequence[int],
    real: ImageArrays,
    steps: int = 50,
    lr: float = 0.05,
    batch_size: int = 16,
    samples_per_class: int = 16,
    guidance_scale: float = 3.0,
    num_inference_steps: int = 25,
    scheduler: SamplerName = "ddim",
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Optimise one class-embedding vector per erased class; judge what it generates.

    ``real`` holds real images of (at least) the erased classes; they are the attack's
    targets. Returns ``attack_success_rate`` (over all erased classes), per class rates,
    and the final attack loss, next to the rate of the plain label on the same seeds
    (``baseline_forget_rate``) so the attack's gain is visible.
    """
    erased = sorted({int(c) for c in forget_labels})
    _check(erased, steps, samples_per_class)
    dev = resolve_device(device)
    unet = load_unet(arch, state_dict, dev).eval()
    unet.requires_grad_(False)
    base = unet.class_embedding
    if not isinstance(base, torch.nn.Embedding):
        raise EngineError("the attack needs a model with a learned class embedding")
    schedule = noise_scheduler(arch)
    adv_index = arch.num_classes + 1  # past the null class: never a real label
    tally = _Tally()
    try:
        for c in erased:
            x0_all = _targets(real, c, arch, dev)
            vector = base.weight[c].detach().clone().requires_grad_(True)
            unet.class_embedding = _SwappedEmbedding(base, adv_index, vector)

            def predict(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                labels = torch.full((len(x_t),), adv_index, dtype=torch.long, device=dev)
                return predict_noise(unet, x_t, t, labels)

            loss = _optimise(
                vector,
                x0_all,
                schedule,
                arch.num_train_timesteps,
                predict,
                steps,
                lr,
                batch_size,
                seed * 1_000_003 + c,
            )
            seeds = [seed * 1_000_003 + c * samples_per_class + k for k in range(samples_per_class)]
            images = []
            with torch.no_grad():
                for label in (adv_index, c):
                    x = sample(
                        unet,
                        arch,
                        [label] * samples_per_class,
                        seeds,
                        guidance_scale,
                        num_inference_steps,
                        scheduler,
                        dev,
                    )
                    images.append(judge.predict(to_uint8(x))[0])
            tally.add(c, images[0], images[1], loss)
    finally:
        unet.class_embedding = base
    return tally.result("class_embedding", steps, lr, samples_per_class)


def prompt_embedding_attack(
    model: PromptModel,
    judge: Judge,
    prompts: Mapping[int, str],
    real: ImageArrays,
    steps: int = 50,
    lr: float = 0.05,
    batch_size: int = 16,
    samples_per_class: int = 16,
    guidance_scale: float = 3.0,
    num_inference_steps: int = 25,
    scheduler: SamplerName = "ddim",
    seed: int = 0,
) -> dict[str, Any]:
    """Optimise the token embeddings of each erased class's prompt (``prompts``: class →
    the caption to start from) against real images of that class; judge what the vectors
    generate. Same result keys as ``embedding_attack``, ``attack: "prompt_embedding"``.

    Pixel-space models only (``text2image``): a latent model would need its images
    encoded by its VAE first.
    """
    if model.vae is not None or model.arch is None:
        raise EngineError("the prompt-embedding attack runs on pixel-space text2image models")
    _check(list(prompts), steps, samples_per_class)
    arch, dev, n = model.arch, model.device, samples_per_class
    model.unet.eval().requires_grad_(False)
    schedule = noise_scheduler(arch)  # type: ignore[arg-type]  # duck: the schedule fields
    tally = _Tally()
    for c, prompt in sorted(prompts.items()):
        x0_all = _targets(real, c, arch, dev)
        vector = model.encode([prompt]).detach().clone().requires_grad_(True)

        def predict(
            x_t: torch.Tensor, t: torch.Tensor, vector: torch.Tensor = vector
        ) -> torch.Tensor:
            return model.predict(x_t, t, vector.expand(len(x_t), *vector.shape[1:]))

        loss = _optimise(
            vector,
            x0_all,
            schedule,
            model.num_train_timesteps,
            predict,
            steps,
            lr,
            batch_size,
            seed * 1_000_003 + c,
        )
        seeds = [seed * 1_000_003 + c * n + k for k in range(n)]
        images = []
        with torch.no_grad():
            for contexts in (vector.detach().expand(n, *vector.shape[1:]), None):
                x = sample_prompts(
                    model,
                    [prompt] * n,
                    [""] * n,
                    seeds,
                    guidance_scale,
                    num_inference_steps,
                    scheduler,
                    contexts=contexts,
                )
                images.append(judge.predict(to_uint8(x))[0])
        tally.add(c, images[0], images[1], loss)
    return tally.result("prompt_embedding", steps, lr, samples_per_class)
