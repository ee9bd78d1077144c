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

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
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

JUDGE_FORMAT = "expunge-judge-v1"
DEFAULT_JUDGE_RECIPE = TrainParams(
    epochs=8, batch_size=64, lr=2e-3, optimizer="adam", weight_decay=0.0, seed=0
)


def judge_recipe_for(train_count: int, max_train_samples: int | None = None) -> TrainParams:
    """The default recipe scaled to the data: at least ~250 optimizer steps however small
    the set (ORL has 320 training photos), 8 epochs on large ones."""
    epochs = int(min(60, max(8, math.ceil(16_000 / max(train_count, 1)))))
    return DEFAULT_JUDGE_RECIPE.model_copy(
        update={"epochs": epochs, "max_train_samples": max_train_samples}
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
    num_classes: int | None = None,
) -> Judge:
    """Train the judge on real ``images`` at the diffusion model's size and channels.

    ``num_classes`` overrides the model's class count for factor judges (objects or
    styles of a styled dataset). With ``test`` (real images the judge never trained
    on), ``metrics["heldout_accuracy"]`` says how far to trust its verdicts.
    """
    judge_arch = pixel_config(arch, width=width)
    if num_classes is not None:
        judge_arch = judge_arch.model_copy(update={"num_classes": num_classes})
    trained = train_classifier(
        judge_arch, recipe or DEFAULT_JUDGE_RECIPE, images, test=test, callbacks=callbacks
    )
    judge = Judge(arch=judge_arch, state_dict=trained.state_dict, metrics=dict(trained.metrics))
    if test is not None and len(test):
        judge.metrics["heldout_accuracy"] = judge.accuracy(test)
        judge.metrics["heldout_count"] = float(len(test))
    judge.metrics["train_count"] = float(len(images))
    return judge


def judge_recipe_key(
    arch: DiffusionArchitecture,
    recipe: TrainParams | None = None,
    width: int = 16,
    num_classes: int | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A short hash of everything that decides a trained judge's weights.

    The service caches judges in object storage under this key, so a judge is trained
    once per (dataset version, resolution, recipe) and a changed recipe never reuses
    a stale one.
    """
    body = {
        "arch": pixel_config(arch, width=width).model_dump(mode="json"),
        "num_classes": num_classes,
        "recipe": (recipe or DEFAULT_JUDGE_RECIPE).model_dump(mode="json"),
        "extra": dict(extra or {}),
        "format": JUDGE_FORMAT,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def judge_to_bytes(judge: Judge) -> bytes:
    """The judge as safetensors: weights, with its architecture and metrics as metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in judge.state_dict.items()}
    meta = {
        "format": JUDGE_FORMAT,
        "arch": judge.arch.model_dump_json(),
        "metrics": json.dumps(judge.metrics),
    }
    return save(tensors, metadata=meta)


def judge_from_bytes(data: bytes) -> Judge:
    """Inverse of ``judge_to_bytes``; refuses files of another format by name."""
    from safetensors.torch import load

    # The safetensors header: an 8-byte little-endian length, then JSON with the metadata.
    try:
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise EngineError(f"not a judge file: {exc}") from exc
    if meta.get("format") != JUDGE_FORMAT:
        raise EngineError(f"not a judge file (format {meta.get('format')!r})")
    return Judge(
        arch=ArchitectureConfig.model_validate_json(meta["arch"]),
        state_dict=load(data),
        metrics={k: float(v) for k, v in json.loads(meta.get("metrics") or "{}").items()},
    )


@dataclass
class FactorJudge:
    """A judge of one factor of the labels (the object, or the style, of a styled set).

    ``values[label]`` is the factor value of each class of the diffusion model.
    """

    name: str
    judge: Judge
    values: list[int]


def factor_report(
    factor: FactorJudge, images: np.ndarray, prompted: np.ndarray, erased: Sequence[int]
) -> dict[str, Any]:
    """How one factor survives an erasure.

    ``erased_values`` are the factor values every one of whose classes is erased (a
    whole style); ``forget_rate`` is then the share of images prompted with an erased
    class that the factor judge still sees in an erased value. ``accuracy_retained`` is
    the factor judge's accuracy on images of the kept classes, and
    ``accuracy_erased_prompts`` on images of the erased ones (erasing a style should
    keep the object the prompt names).
    """
    values = np.asarray(factor.values, dtype=np.int64)
    predicted, _ = factor.judge.predict(images)
    wanted = values[prompted]
    is_erased = np.isin(prompted, list(erased))
    erased_set = set(int(c) for c in erased)
    erased_values = [
        int(v)
        for v in sorted(set(values.tolist()))
        if {c for c in range(len(values)) if values[c] == v} <= erased_set
    ]
    out: dict[str, Any] = {
        "erased_values": erased_values,
        "accuracy_retained": float((predicted[~is_erased] == wanted[~is_erased]).mean()),
        "accuracy_erased_prompts": float((predicted[is_erased] == wanted[is_erased]).mean()),
        "judge_heldout_accuracy": factor.judge.metrics.get("heldout_accuracy"),
    }
    if erased_values:
        out["forget_rate"] = float(np.isin(predicted[is_erased], erased_values).mean())
    return out


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
    factors: Sequence[FactorJudge] = (),
    generator: Callable[[GenerateParams, Callbacks | None], Any] | None = None,
) -> dict[str, Any]:
    """Generate ``samples_per_class`` images of every class and let the judge score them.

    ``generator`` replaces the class-conditional sampler for other families (text2image
    generates each class from its caption): it takes the ``GenerateParams`` and returns
    an object with ``images`` (uint8 NHWC) and ``labels``; ``state_dict`` is then unused.

    ``factors`` add a ``factors`` entry per factor judge (see ``factor_report``): on the
    objects × styles set, erasing a style reports the style's forget rate and how well
    the objects are kept.

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
    if generator is not None:
        generated = generator(params, callbacks)
    else:
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
    if factors:
        result["factors"] = {
            f.name: factor_report(f, generated.images, prompted, erased) for f in factors
        }
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
