"""An independent judge of erasure: a classifier trained on the real images.

Whether a class is gone from a generative model cannot be read off its loss; it is
decided by looking at what the model generates. The judge is the engine's ``small_cnn``
trained by ``train_classifier`` on the real labelled images at the model's resolution;
it never sees the diffusion model or its samples while training, so it cannot be fitted
to an erasure method's artefacts.

Metrics (``evaluate_erasure``), following UnlearnCanvas and the issue's goals:

* ``forget_rate``: share of images generated *for an erased class* that the judge still
  classifies as that class (lower is better; the goal is <= 2 %). ``erasure_rate`` is
  its complement (UnlearnCanvas' "unlearning accuracy").
* ``retain_accuracy``: judge accuracy on images generated for every other class.
* ``frechet_retain`` / ``frechet_forget``: Fréchet distance between the judge's
  penultimate features of generated and real images, per group (our offline stand-in
  for FID; only comparable between runs with the same sample counts, because the
  estimate is biased at small counts).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from workers.engine.config import ArchitectureConfig, TrainParams
from workers.engine.data import ImageArrays, to_tensor
from workers.engine.diffusion.config import DiffusionArchitecture, GenerateParams, SamplerName
from workers.engine.diffusion.models import generate, pixel_config
from workers.engine.errors import EngineError
from workers.engine.nets import build_network
from workers.engine.training import Callbacks, train_classifier

DEFAULT_JUDGE_RECIPE = TrainParams(
    epochs=8, batch_size=64, lr=2e-3, optimizer="adam", weight_decay=0.0, seed=0
)


@dataclass
class Judge:
    """A trained classifier over the diffusion model's classes and pixel format."""

    arch: ArchitectureConfig
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, penultimate features) for uint8 NHWC images."""
        net = build_network(self.arch)
        net.load_state_dict(self.state_dict)
        net.eval()
        preds, feats = [], []
        for start in range(0, len(images), batch_size):
            x = to_tensor(images[start : start + batch_size], self.arch)
            f = net.features(x)
            preds.append(net.head(f).argmax(dim=1).numpy())
            feats.append(f.numpy().astype(np.float64))
        if not preds:
            return np.empty(0, dtype=np.int64), np.empty((0, net.feature_dim))
        return np.concatenate(preds), np.concatenate(feats)

    def accuracy(self, arrays: ImageArrays) -> float:
        """Share of ``arrays`` the judge labels correctly."""
        predicted, _ = self.predict(arrays.images)
        return float((predicted == arrays.labels).mean())


def train_judge(
    arch: DiffusionArchitecture,
    images: ImageArrays,
    test: ImageArrays | None = None,
    recipe: TrainParams | None = None,
    width: int = 16,
    callbacks: Callbacks | None = None,
) -> Judge:
    """Train the judge on real ``images`` at the diffusion model's size and channels."""
    judge_arch = pixel_config(arch, width=width)
    trained = train_classifier(
        judge_arch, recipe or DEFAULT_JUDGE_RECIPE, images, test=test, callbacks=callbacks
    )
    return Judge(arch=judge_arch, state_dict=trained.state_dict, metrics=trained.metrics)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature sets.

    tr((S_a S_b)^(1/2)) is the sum of square roots of the eigenvalues of S_a S_b, which
    are real and non-negative for covariance matrices; taking it from the eigenvalues
    avoids a matrix square root that fails on the singular covariances small sample
    counts give.
    """
    if len(a) < 2 or len(b) < 2:
        raise EngineError("a Fréchet distance needs at least two samples on each side")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(cov_a @ cov_b)
    root_trace = float(np.sqrt(np.clip(eig.real, 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * root_trace)
    return max(value, 0.0)


def evaluate_erasure(
    arch: DiffusionArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    judge: Judge,
    forget_labels: Sequence[int],
    real: ImageArrays | None = None,
    samples_per_class: int = 64,
    guidance_scale: float = 3.0,
    num_inference_steps: int = 50,
    scheduler: SamplerName = "ddim",
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
    callbacks: Callbacks | None = None,
) -> dict[str, Any]:
    """Generate ``samples_per_class`` images of every class and let the judge score them.

    The same ``seed`` gives every model the same starting noise per class, so the
    original, the erased and the retrained model are compared on identical draws.
    """
    erased = sorted({int(c) for c in forget_labels})
    if not erased:
        raise EngineError("forget_labels is empty")
    if any(not 0 <= c < arch.num_classes for c in erased):
        raise EngineError(f"forget_labels {erased} are not all classes of the model")
    if len(erased) >= arch.num_classes:
        raise EngineError("every class is erased: there is nothing to retain")
    if judge.arch.num_classes != arch.num_classes:
        raise EngineError(
            f"the judge knows {judge.arch.num_classes} classes, the model {arch.num_classes}"
        )
    started = time.perf_counter()
    labels = [c for c in range(arch.num_classes) for _ in range(samples_per_class)]
    # Image k of class c always gets seed (seed, c, k), whatever else is generated.
    seeds = [
        seed * 1_000_003 + c * samples_per_class + k
        for c in range(arch.num_classes)
        for k in range(samples_per_class)
    ]
    params = GenerateParams(
        labels=labels,
        seeds=seeds,
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        scheduler=scheduler,
        batch_size=batch_size,
        device=device,
    )
    generated = generate(arch, state_dict, params, callbacks)
    predicted, features = judge.predict(generated.images)
    prompted = generated.labels
    is_erased = np.isin(prompted, erased)
    per_class = {
        int(c): float((predicted[prompted == c] == c).mean()) for c in range(arch.num_classes)
    }
    result: dict[str, Any] = {
        "forget_rate": float((predicted[is_erased] == prompted[is_erased]).mean()),
        "retain_accuracy": float((predicted[~is_erased] == prompted[~is_erased]).mean()),
        "per_class_accuracy": per_class,
        "forget_labels": erased,
        "samples_per_class": samples_per_class,
        "guidance_scale": guidance_scale,
        "num_inference_steps": num_inference_steps,
        "scheduler": scheduler,
    }
    result["erasure_rate"] = 1.0 - result["forget_rate"]
    if real is not None and len(real):
        real_pred, real_feat = judge.predict(real.images)
        result["judge_accuracy_real"] = float((real_pred == real.labels).mean())
        real_erased = np.isin(real.labels, erased)
        if (~real_erased).sum() >= 2:
            result["frechet_retain"] = frechet_distance(
                features[~is_erased], real_feat[~real_erased]
            )
        if real_erased.sum() >= 2:
            result["frechet_forget"] = frechet_distance(features[is_erased], real_feat[real_erased])
    result["seconds"] = time.perf_counter() - started
    return result
