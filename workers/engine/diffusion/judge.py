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

One judge at one sampler setting is one opinion: re-judging the same erased model with
another network, more sampler steps or other seeds moved retained accuracy by 20 points
(issue #13). ``evaluate_panel`` therefore scores every (judge, sampler setting) *cell*,
each with Wilson 95 % intervals, and reports how far the judges disagree; a verdict
passes only if every cell does (``core.deletion.policy.verify_diffusion``).
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

from contracts.classifier import ArchitectureConfig, TrainParams
from contracts.ddpm import DiffusionArchitecture, GenerateParams, SamplerName
from workers.engine.data import ImageArrays, to_tensor
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


# The architectures a worker-trained judge may have, and the width each gets by default
# (a small CNN, or an MLP over the pixels: two judges that share no layer type).
JUDGE_NETWORKS: dict[str, int] = {"small_cnn": 16, "mlp": 256}


def judge_architecture(
    arch: DiffusionArchitecture,
    network: str = "small_cnn",
    width: int | None = None,
    num_classes: int | None = None,
) -> ArchitectureConfig:
    """The classifier config of a judge of ``arch``'s pixels with the given network."""
    if network not in JUDGE_NETWORKS:
        raise EngineError(f"unknown judge network {network!r}; known: {sorted(JUDGE_NETWORKS)}")
    update: dict[str, Any] = {"name": network}
    if num_classes is not None:
        update["num_classes"] = num_classes
    base = pixel_config(arch, width=width or JUDGE_NETWORKS[network])
    return base.model_copy(update=update)


def train_judge(
    arch: DiffusionArchitecture,
    images: ImageArrays,
    test: ImageArrays | None = None,
    recipe: TrainParams | None = None,
    width: int | None = None,
    callbacks: Callbacks | None = None,
    num_classes: int | None = None,
    network: str = "small_cnn",
) -> Judge:
    """Train the judge on real ``images`` at the diffusion model's size and channels.

    ``num_classes`` overrides the model's class count for factor judges (objects or
    styles of a styled dataset); ``network`` picks the architecture (``JUDGE_NETWORKS``),
    so two judges of one dataset can share nothing but the task. With ``test`` (real
    images the judge never trained on), ``metrics["heldout_accuracy"]`` says how far to
    trust its verdicts.
    """
    judge_arch = judge_architecture(arch, network, width, num_classes)
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
    width: int | None = None,
    num_classes: int | None = None,
    extra: Mapping[str, Any] | None = None,
    network: str = "small_cnn",
) -> str:
    """A short hash of everything that decides a trained judge's weights.

    The service caches judges in object storage under this key, so a judge is trained
    once per (dataset version, resolution, recipe) and a changed recipe never reuses
    a stale one.
    """
    body = {
        "arch": judge_architecture(arch, network, width).model_dump(mode="json"),
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


def _check_classes(
    arch: DiffusionArchitecture, judges: Sequence[Judge], forget_labels: Sequence[int]
) -> list[int]:
    """The erased classes, sorted, after refusing what no judge can score."""
    erased = sorted({int(c) for c in forget_labels})
    if not erased:
        raise EngineError("forget_labels is empty")
    if any(not 0 <= c < arch.num_classes for c in erased):
        raise EngineError(f"forget_labels {erased} are not all classes of the model")
    if len(erased) >= arch.num_classes:
        raise EngineError("every class is erased: there is nothing to retain")
    for judge in judges:
        if judge.arch.num_classes != arch.num_classes:
            raise EngineError(
                f"the judge knows {judge.arch.num_classes} classes, the model {arch.num_classes}"
            )
    return erased


def _generate_classes(
    arch: DiffusionArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    samples_per_class: int,
    guidance_scale: float,
    num_inference_steps: int,
    scheduler: SamplerName,
    seed: int,
    batch_size: int,
    device: str,
    callbacks: Callbacks | None,
    generator: Callable[[GenerateParams, Callbacks | None], Any] | None,
) -> Any:
    """``samples_per_class`` images of every class; image k of class c always gets seed
    (seed, c, k), whatever else is generated."""
    labels = [c for c in range(arch.num_classes) for _ in range(samples_per_class)]
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
        return generator(params, callbacks)
    return generate(arch, state_dict, params, callbacks)


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
    erased = _check_classes(arch, [judge], forget_labels)
    started = time.perf_counter()
    generated = _generate_classes(
        arch,
        state_dict,
        samples_per_class,
        guidance_scale,
        num_inference_steps,
        scheduler,
        seed,
        batch_size,
        device,
        callbacks,
        generator,
    )
    result = _erasure_report(judge, generated, erased, arch.num_classes, real, factors)
    result.update(
        samples_per_class=samples_per_class,
        guidance_scale=guidance_scale,
        num_inference_steps=num_inference_steps,
        scheduler=scheduler,
    )
    result["seconds"] = time.perf_counter() - started
    return result


def _erasure_report(
    judge: Judge,
    generated: Any,
    erased: list[int],
    num_classes: int,
    real: ImageArrays | None,
    factors: Sequence[FactorJudge],
) -> dict[str, Any]:
    """The judge's full report on one set of generated images (see ``evaluate_erasure``)."""
    predicted, features = judge.predict(generated.images)
    prompted = generated.labels
    is_erased = np.isin(prompted, erased)
    per_class = {int(c): float((predicted[prompted == c] == c).mean()) for c in range(num_classes)}
    result: dict[str, Any] = {
        "forget_rate": float((predicted[is_erased] == prompted[is_erased]).mean()),
        "retain_accuracy": float((predicted[~is_erased] == prompted[~is_erased]).mean()),
        "per_class_accuracy": per_class,
        "forget_labels": erased,
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
    return result


# --------------------------------------------------------------------------- panel

# The normal quantile of a two-sided 95 % interval.
WILSON_Z = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion: unlike p ± z·se it stays inside [0, 1] and
    is not empty at 0 of n, which is exactly where an erased class should be."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise EngineError(f"{successes} successes out of {n} is not a proportion")
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SamplerSetting:
    """One way of drawing the judged images: sampler, step count and seed."""

    num_inference_steps: int
    seed: int = 0
    scheduler: SamplerName = "ddim"

    @property
    def label(self) -> str:
        return f"{self.scheduler} {self.num_inference_steps} steps, seed {self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "num_inference_steps": self.num_inference_steps,
            "seed": self.seed,
            "label": self.label,
        }


@dataclass
class NamedJudge:
    """A judge with the name its cells are reported under."""

    name: str
    judge: Judge


def erasure_cell(
    judge: str,
    sampler: SamplerSetting,
    predicted: np.ndarray,
    prompted: np.ndarray,
    erased: Sequence[int],
) -> dict[str, Any]:
    """One (judge, sampler setting) cell: forget rate and retained accuracy, each with
    its count and Wilson 95 % interval."""
    is_erased = np.isin(prompted, list(erased))
    forget_hits = int((predicted[is_erased] == prompted[is_erased]).sum())
    forget_n = int(is_erased.sum())
    retain_hits = int((predicted[~is_erased] == prompted[~is_erased]).sum())
    retain_n = int((~is_erased).sum())
    return {
        "judge": judge,
        "sampler": sampler.label,
        "num_inference_steps": sampler.num_inference_steps,
        "seed": sampler.seed,
        "scheduler": sampler.scheduler,
        "forget_rate": forget_hits / forget_n if forget_n else 0.0,
        "forget_ci": list(wilson_interval(forget_hits, forget_n)),
        "forget_count": forget_n,
        "retain_accuracy": retain_hits / retain_n if retain_n else 0.0,
        "retain_ci": list(wilson_interval(retain_hits, retain_n)),
        "retain_count": retain_n,
    }


def _spread(cells: Sequence[Mapping[str, Any]], group: str, key: str) -> float:
    """The largest max-minus-min of ``key`` among cells sharing the same ``group``."""
    groups: dict[Any, list[float]] = {}
    for cell in cells:
        groups.setdefault(cell[group], []).append(float(cell[key]))
    return max((max(v) - min(v) for v in groups.values() if len(v) > 1), default=0.0)


def disagreement(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """How far the cells disagree: between judges on the same sampler setting, and
    between sampler settings under the same judge (largest gap, in rate points)."""
    return {
        "between_judges": {
            "forget_rate": _spread(cells, "sampler", "forget_rate"),
            "retain_accuracy": _spread(cells, "sampler", "retain_accuracy"),
        },
        "between_samplers": {
            "forget_rate": _spread(cells, "judge", "forget_rate"),
            "retain_accuracy": _spread(cells, "judge", "retain_accuracy"),
        },
    }


def evaluate_panel(
    arch: DiffusionArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    judges: Sequence[NamedJudge],
    forget_labels: Sequence[int],
    samplers: Sequence[SamplerSetting],
    real: ImageArrays | None = None,
    samples_per_class: int = 16,
    guidance_scale: float = 3.0,
    batch_size: int = 64,
    device: str = "cpu",
    callbacks_for: Callable[[int], Callbacks | None] | None = None,
    factors: Sequence[FactorJudge] = (),
    generator: Callable[[GenerateParams, Callbacks | None], Any] | None = None,
) -> dict[str, Any]:
    """Every judge scores the images of every sampler setting.

    Images are generated once per sampler setting and shown to every judge. The report
    is ``evaluate_erasure``'s for the first judge at the first setting (per-class
    accuracy, Fréchet distances and factors are that judge's), plus ``cells`` (one per
    judge × setting, see ``erasure_cell``), ``disagreement``, and ``worst``: the highest
    forget rate and lowest retained accuracy of any cell. ``callbacks_for(i)`` gives the
    callbacks of setting ``i`` (progress, cancellation).
    """
    if not judges:
        raise EngineError("a panel needs at least one judge")
    if not samplers:
        raise EngineError("a panel needs at least one sampler setting")
    names = [j.name for j in judges]
    if len(set(names)) != len(names):
        raise EngineError(f"judge names must differ: {names}")
    if len(set(samplers)) != len(samplers):
        raise EngineError("sampler settings must differ")
    erased = _check_classes(arch, [j.judge for j in judges], forget_labels)
    started = time.perf_counter()
    report: dict[str, Any] = {}
    cells: list[dict[str, Any]] = []
    for i, sampler in enumerate(samplers):
        generated = _generate_classes(
            arch,
            state_dict,
            samples_per_class,
            guidance_scale,
            sampler.num_inference_steps,
            sampler.scheduler,
            sampler.seed,
            batch_size,
            device,
            callbacks_for(i) if callbacks_for is not None else None,
            generator,
        )
        if i == 0:
            report = _erasure_report(
                judges[0].judge, generated, erased, arch.num_classes, real, factors
            )
        for named in judges:
            predicted, _ = named.judge.predict(generated.images)
            cells.append(erasure_cell(named.name, sampler, predicted, generated.labels, erased))
    report.update(
        samples_per_class=samples_per_class,
        guidance_scale=guidance_scale,
        num_inference_steps=samplers[0].num_inference_steps,
        scheduler=samplers[0].scheduler,
        judges=names,
        samplers=[s.as_dict() for s in samplers],
        cells=cells,
        disagreement=disagreement(cells),
        worst={
            "forget_rate": max(c["forget_rate"] for c in cells),
            "retain_accuracy": min(c["retain_accuracy"] for c in cells),
        },
        seconds=time.perf_counter() - started,
    )
    return report
