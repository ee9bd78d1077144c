"""ddpm jobs: train a class-conditional DDPM, erase classes (or retrain without samples),
and judge what a version generates. The engine is ``workers.engine.diffusion``; this
module only moves data, weights and metrics between it and the service."""

from __future__ import annotations

import hashlib
import importlib.util
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy.orm import Session

from contracts.classifier import MNIST_MEAN, MNIST_STD, ArchitectureConfig, TrainParams
from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
from contracts.judge import DEFAULT_JUDGE
from core.datasets.builtin import label_factors
from core.datasets.reader import ShardReader
from models import Dataset, Job, Model, ModelVersion
from workers.context import JobContext
from workers.engine.checkpoint import read_external_checkpoint
from workers.engine.data import ImageArrays
from workers.engine.diffusion.attack import embedding_attack
from workers.engine.diffusion.checkpoint import CHECKPOINT_FORMAT, DELTA_FORMAT, save_delta
from workers.engine.diffusion.judge import (
    FactorJudge,
    Judge,
    NamedJudge,
    SamplerSetting,
    evaluate_panel,
    judge_from_bytes,
    judge_recipe_for,
    judge_recipe_key,
    judge_to_bytes,
    train_judge,
)
from workers.engine.diffusion.models import (
    count_parameters,
    to_model_space,
    to_uint8,
    train_ddpm,
)
from workers.engine.diffusion.unlearning import DiffusionUnlearnData, get_diffusion_method
from workers.engine.errors import EngineError
from workers.engine.training import Callbacks
from workers.jobs.common import (
    ContextCallbacks,
    SampleSet,
    load_split,
    stop_reason,
    version_split,
)
from workers.jobs.publish import (
    VersionOutput,
    load_version_weights,
    publish_version,
    succeed,
    unlearning_record,
)
from workers.jobs.training_job import Trained, Trainer, TrainingData, TrainingStart, run_training

MNIST_SOURCE = "builtin:mnist"
JUDGE_NAME = "digit-recognizer-py mnist_cnn (pretrained on MNIST)"
# The name the pretrained judge's cells are reported under.
PRETRAINED_CELL_NAME = "digit-recognizer"
# Worker-trained judges live here, one folder per dataset (purged with its samples).
JUDGE_PREFIX = "judges"
JUDGE_MAX_TRAIN = 12_000
JUDGE_MAX_HELDOUT = 2_000


def _version_config(arch: DiffusionArchitecture, **extra: Any) -> dict[str, Any]:
    """A ddpm version's config; ``format`` and ``arch`` make the stored checkpoint a file
    that ``workers.engine.diffusion.checkpoint.load_ddpm`` reads on its own."""
    dumped = arch.model_dump(mode="json")
    return {"format": CHECKPOINT_FORMAT, "arch": dumped, "architecture": dumped, **extra}


# --------------------------------------------------------------------------- train


class DDPMTrainer(Trainer[SampleSet]):
    """The ddpm part of the train job: the images with their labels as classes; the
    version holds the EMA weights (what one samples from)."""

    def read(
        self, session: Session, reader: ShardReader, job: Job, model: Model, version: int
    ) -> TrainingData[SampleSet]:
        assert job.dataset_id is not None
        return TrainingData(
            arch=DiffusionArchitecture.model_validate(model.architecture),
            params=DiffusionTrainParams.model_validate(job.params),
            train=load_split(session, reader, job.dataset_id, version, "train"),
        )

    def fit(
        self,
        ctx: JobContext,
        job: Job,
        data: TrainingData[SampleSet],
        callbacks: ContextCallbacks,
        start: TrainingStart,
    ) -> Trained:
        params = data.params
        assert isinstance(params, DiffusionTrainParams)
        init = start.init_state_dict()
        trained = train_ddpm(
            data.arch,
            params,
            data.train.arrays,
            callbacks=callbacks,
            resume=start.resume(),
            init_state_dict=init,
        )
        return Trained(
            state_dict=trained.state_dict,
            metrics=trained.metrics,
            sample_ids=trained.train_sample_ids,
            config=_version_config(data.arch, weights="ema" if params.ema_decay > 0 else "raw"),
        )


def run_train_ddpm(ctx: JobContext, job: Job) -> dict[str, Any]:
    return run_training(ctx, job, DDPMTrainer())


# --------------------------------------------------------------------------- judge


def _digit_recognizer_weights() -> Path | None:
    spec = importlib.util.find_spec("digit_recognizer")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "handwriting_model.pth"
    return path if path.is_file() else None


def load_judge(dataset: Dataset, arch: DiffusionArchitecture) -> tuple[Judge | None, str]:
    """The pretrained judge for the dataset, or None and why there is none.

    Only MNIST has one: digit-recognizer-py's CNN, trained on real MNIST digits and never
    on anything a diffusion model made, so it cannot be fitted to an erasure's artefacts.
    Other datasets get a judge trained by the worker (``trained_judges``).
    """
    if dataset.source != MNIST_SOURCE:
        return None, (
            f"no pretrained judge for dataset {dataset.name!r} (source {dataset.source}); "
            "only MNIST has one (digit-recognizer-py)"
        )
    if arch.num_classes != 10 or arch.in_channels != 1:
        return None, (
            "the MNIST judge scores 10 grey classes; the model has "
            f"num_classes={arch.num_classes}, in_channels={arch.in_channels}"
        )
    weights = _digit_recognizer_weights()
    if weights is None:
        return None, "digit-recognizer-py is not installed, so there is no MNIST judge"
    judge_arch = ArchitectureConfig(
        name="mnist_cnn", num_classes=10, normalize_mean=MNIST_MEAN, normalize_std=MNIST_STD
    )
    return Judge(arch=judge_arch, state_dict=read_external_checkpoint(weights)), JUDGE_NAME


def judge_recipe(train_count: int) -> TrainParams:
    """The recipe of a worker-trained judge (at most 12 000 images per epoch)."""
    return judge_recipe_for(train_count, JUDGE_MAX_TRAIN)


def judge_key(
    dataset_id: str,
    number: int,
    arch: DiffusionArchitecture,
    name: str,
    recipe: TrainParams,
    num_classes: int,
    dataset_version_id: str,
    network: str = "small_cnn",
    part: str | None = None,
) -> str:
    """Where a trained judge is cached: one per (dataset version, resolution, recipe,
    network, and the part of the data it trains on)."""
    extra: dict[str, Any] = {"dataset_version_id": dataset_version_id, "factor": name}
    if part is not None:
        extra["part"] = part
    digest = judge_recipe_key(arch, recipe, num_classes=num_classes, extra=extra, network=network)
    size = f"{arch.sample_size}x{arch.sample_size}c{arch.in_channels}"
    return f"{JUDGE_PREFIX}/{dataset_id}/v{number}/{name}-{size}-{digest}.safetensors"


def _real_splits(
    ctx: JobContext, dataset_id: str, number: int
) -> tuple[ImageArrays, ImageArrays | None]:
    """(train, held-out) real images of a dataset version; held-out is the test split,
    or None where the dataset has none."""
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        train = load_split(session, reader, dataset_id, number, "train").arrays
        try:
            test: ImageArrays | None = load_split(
                session, reader, dataset_id, number, "test"
            ).arrays
        except ValueError:
            test = None
    return train, test


def _cached_judge(
    ctx: JobContext,
    key: str,
    name: str,
    arch: DiffusionArchitecture,
    train: ImageArrays,
    test: ImageArrays | None,
    recipe: TrainParams,
    num_classes: int,
    network: str = "small_cnn",
) -> tuple[Judge, bool]:
    """The judge stored under ``key``, or one trained now and stored there."""
    if ctx.store.exists(key):
        return judge_from_bytes(ctx.store.get_bytes(key)), True
    ctx.log(
        f"training the {name} judge ({network}) on {min(len(train), JUDGE_MAX_TRAIN)} real "
        f"images ({recipe.epochs} epochs at {arch.sample_size}x{arch.sample_size})"
    )
    small_train = real_images_at_model_size(train, arch, JUDGE_MAX_TRAIN)
    small_test = (
        real_images_at_model_size(test, arch, JUDGE_MAX_HELDOUT) if test is not None else None
    )
    judge = train_judge(
        arch,
        small_train,
        test=small_test,
        recipe=recipe,
        num_classes=num_classes,
        callbacks=_StopOnly(ctx),
        network=network,
    )
    ctx.store.put_bytes(key, judge_to_bytes(judge))
    return judge, False


class _StopOnly(Callbacks):
    """Lets a cancelled or timed-out job stop a judge's training, and nothing else: the
    judge's progress and checkpoints are not the job's."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def should_stop(self) -> bool:
        return self.ctx.should_stop()


def _relabel(images: ImageArrays | None, values: list[int]) -> ImageArrays | None:
    if images is None:
        return None
    mapped = np.asarray(values, dtype=np.int64)[images.labels]
    return ImageArrays(images=images.images, labels=mapped, sample_ids=images.sample_ids)


def judge_halves(images: ImageArrays) -> tuple[ImageArrays, ImageArrays]:
    """Two disjoint halves of ``images`` holding every class about equally: within a
    class, samples ordered by a hash of their id go alternately to each half, so two
    judges trained on them never share an image and the split does not depend on the
    order the shards were read in."""

    def order(i: int) -> str:
        return hashlib.sha256(images.sample_ids[i].encode()).hexdigest()

    first: list[int] = []
    second: list[int] = []
    for label in np.unique(images.labels):
        members = sorted(np.flatnonzero(images.labels == label).tolist(), key=order)
        first.extend(members[0::2])
        second.extend(members[1::2])
    if not first or not second:
        raise ValueError("too few real images to train two judges on disjoint halves")
    return images.subset(np.sort(first)), images.subset(np.sort(second))


def _trained_judge(
    ctx: JobContext,
    dataset: Dataset,
    number: int,
    dataset_version_id: str,
    arch: DiffusionArchitecture,
    network: str,
    part: str,
    train: ImageArrays,
    heldout: ImageArrays | None,
    recipe: TrainParams,
) -> tuple[NamedJudge, dict[str, Any]]:
    """One worker-trained label judge (cached) and what the report says about it."""
    key = judge_key(
        dataset.id,
        number,
        arch,
        "labels",
        recipe,
        arch.num_classes,
        dataset_version_id,
        network=network,
        part=part,
    )
    judge, cached = _cached_judge(
        ctx, key, f"labels/{network}", arch, train, heldout, recipe, arch.num_classes, network
    )
    info: dict[str, Any] = {
        "name": f"{network} trained on the {part} of {dataset.name!r} v{number}",
        "cell_name": f"{network}@{part}",
        "kind": "trained",
        "architecture": network,
        "data": part,
        "key": key,
        "cached": cached,
        "heldout_accuracy": judge.metrics.get("heldout_accuracy"),
        "heldout_count": judge.metrics.get("heldout_count"),
        "train_count": judge.metrics.get("train_count"),
    }
    return NamedJudge(name=info["cell_name"], judge=judge), info


def trained_judges(
    ctx: JobContext,
    dataset: Dataset,
    number: int,
    dataset_version_id: str,
    arch: DiffusionArchitecture,
    pretrained: NamedJudge | None = None,
) -> tuple[list[NamedJudge], list[dict[str, Any]], list[FactorJudge]]:
    """The worker-trained label judges (cached under ``judges/``), and, for datasets whose
    labels combine factors (the objects × styles set), one judge per factor.

    Without a pretrained judge: a ``small_cnn`` and an ``mlp`` on disjoint halves of the
    train split (held out: the test split, else the other half). Beside a pretrained
    judge (MNIST, whose network trained on MNIST's train digits): one ``mlp`` on the
    test split, which the pretrained network never saw (held out: the train split).
    """
    train, test = _real_splits(ctx, dataset.id, number)
    recipe = judge_recipe(len(train))
    panel: list[tuple[str, str, ImageArrays, ImageArrays | None]]
    if pretrained is not None:
        panel = (
            [("mlp", "test split", test, train)]
            if test is not None and len(test)
            else [("mlp", "train split", train, None)]
        )
    else:
        first, second = judge_halves(train)
        panel = [
            ("small_cnn", "train half a", first, test if test is not None else second),
            ("mlp", "train half b", second, test if test is not None else first),
        ]
    judges: list[NamedJudge] = []
    infos: list[dict[str, Any]] = []
    for network, part, images, heldout in panel:
        named, info = _trained_judge(
            ctx,
            dataset,
            number,
            dataset_version_id,
            arch,
            network,
            part,
            images,
            heldout,
            judge_recipe(len(images)),
        )
        judges.append(named)
        infos.append(info)
    factors: list[FactorJudge] = []
    for name, values in (label_factors(dataset.source, list(dataset.label_names)) or {}).items():
        count = max(values) + 1
        fkey = judge_key(dataset.id, number, arch, name, recipe, count, dataset_version_id)
        relabelled = _relabel(train, values)
        assert relabelled is not None
        fjudge, _ = _cached_judge(
            ctx, fkey, name, arch, relabelled, _relabel(test, values), recipe, count
        )
        factors.append(FactorJudge(name=name, judge=fjudge, values=values))
        infos[0].setdefault("factors", {})[name] = {
            "key": fkey,
            "heldout_accuracy": fjudge.metrics.get("heldout_accuracy"),
        }
    return judges, infos, factors


def judge_panel(
    ctx: JobContext,
    dataset: Dataset,
    number: int,
    dataset_version_id: str,
    arch: DiffusionArchitecture,
) -> tuple[list[NamedJudge], list[dict[str, Any]], list[FactorJudge]]:
    """Every judge of the dataset, the first one the primary (its features give the
    Fréchet distances, it scores factors and the attack): MNIST's pretrained network
    plus a worker-trained MLP, or two worker-trained judges elsewhere. Raises
    ``ValueError`` / ``EngineError`` when no judge at all can be had."""
    pretrained, about = load_judge(dataset, arch)
    if pretrained is None:
        try:
            return trained_judges(ctx, dataset, number, dataset_version_id, arch)
        except (ValueError, EngineError) as exc:
            raise ValueError(f"{about}; and no judge could be trained: {exc}") from exc
    primary = NamedJudge(name=PRETRAINED_CELL_NAME, judge=pretrained)
    info: dict[str, Any] = {
        "name": about,
        "cell_name": PRETRAINED_CELL_NAME,
        "kind": "pretrained",
        "architecture": pretrained.arch.name,
        "data": "MNIST train digits (digit-recognizer-py)",
    }
    try:
        more, infos, _ = trained_judges(ctx, dataset, number, dataset_version_id, arch, primary)
    except (ValueError, EngineError) as exc:
        if ctx.should_stop():
            raise
        # The pretrained verdict still stands; the report says it is a single judge's.
        ctx.log(f"only the pretrained judge: a second one could not be trained: {exc}")
        info["panel_reason"] = f"no second judge could be trained: {exc}"
        return [primary], [info], []
    return [primary, *more], [info, *infos], []


def sampler_settings(settings: Mapping[str, Any]) -> list[SamplerSetting]:
    """The sampler settings a judge evaluation draws images with: ``samplers`` where
    given, else the base setting and one with twice the steps and the next seed (the
    issue's gap: 25 versus 50 DDIM steps moved the verdict)."""
    scheduler = settings["scheduler"]
    given = settings.get("samplers")
    if given:
        return [
            SamplerSetting(
                num_inference_steps=int(s["num_inference_steps"]),
                seed=int(s.get("seed") or 0),
                scheduler=s.get("scheduler") or scheduler,
            )
            for s in given
        ]
    steps, seed = int(settings["num_inference_steps"]), int(settings["seed"])
    return [
        SamplerSetting(num_inference_steps=steps, seed=seed, scheduler=scheduler),
        SamplerSetting(
            num_inference_steps=min(2 * steps, 1000), seed=seed + 1, scheduler=scheduler
        ),
    ]


def real_images_at_model_size(
    images: ImageArrays, arch: DiffusionArchitecture, limit: int, seed: int = 0
) -> ImageArrays:
    """At most ``limit`` real images, resized to what the model generates, so the judge
    and the Fréchet features see real and generated images at the same resolution."""
    if len(images) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(images), limit, replace=False))
        images = images.subset(keep)
    resized = to_uint8(to_model_space(images.images, arch))
    return ImageArrays(images=resized, labels=images.labels, sample_ids=images.sample_ids)


def load_real(
    session: Any, reader: ShardReader, dataset_id: str, number: int, limit: int
) -> ImageArrays | None:
    if limit == 0:
        return None
    for split in ("test", "train"):
        try:
            return load_split(session, reader, dataset_id, number, split).arrays
        except ValueError:
            continue
    return None


def judge_versions(
    ctx: JobContext,
    arch: DiffusionArchitecture,
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    forget_labels: list[int],
    dataset: Dataset,
    real: ImageArrays | None,
    settings: dict[str, Any],
    progress_span: tuple[float, float],
    number: int,
    dataset_version_id: str,
    generator_for: Callable[[Mapping[str, torch.Tensor]], Callable[..., Any]] | None = None,
    attack_for: Callable[..., dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Judge metrics of each named state dict (``evaluation``, ``original_evaluation``).

    ``arch`` is the pixel format the judges work at; ``generator_for`` (text2image) turns
    a state dict into the ``evaluate_panel`` generator that draws each class from its
    caption, and ``attack_for(state_dict, judge, forget_labels, real, settings)`` attacks
    such a model (the class-embedding attack is the default, for ddpm).

    Every judge of ``judge_panel`` scores the images of every sampler setting of
    ``sampler_settings``; each evaluation holds the cells, their disagreement and the
    worst cell (``evaluate_panel``). ``judge`` describes the primary judge, ``judges``
    all of them. ``judge: None`` with ``judge_reason`` only where no judge can be had
    (e.g. a dataset without a train split). With ``attack_steps > 0`` the attack runs
    on the first state dict against the primary judge (``evaluation.attack``).
    """
    try:
        judges, infos, factors = judge_panel(ctx, dataset, number, dataset_version_id, arch)
    except (ValueError, EngineError) as exc:
        if ctx.should_stop():
            # Cancelled (or out of time) while training a judge.
            raise stop_reason(ctx, EngineError(str(exc))) from exc
        ctx.log(f"no judge evaluation: {exc}")
        return {"judge": None, "judge_reason": str(exc)}
    judge = judges[0].judge
    samplers = sampler_settings(settings)
    real_small = (
        real_images_at_model_size(real, arch, int(settings["real_images"]), int(settings["seed"]))
        if real is not None
        else None
    )
    out: dict[str, Any] = {"judge": infos[0], "judges": infos}
    low, high = progress_span
    step = (high - low) / max(len(weights), 1)
    for i, (name, state_dict) in enumerate(weights.items()):
        ctx.log(
            f"judging {name}: {settings['samples_per_class']} images per class at each of "
            f"{len(samplers)} sampler settings, {len(judges)} judges"
        )
        start = low + i * step
        part = step / len(samplers)

        def callbacks_for(k: int, start: float = start, part: float = part) -> Callbacks:
            return ContextCallbacks(ctx, progress_span=(start + k * part, start + (k + 1) * part))

        try:
            result = evaluate_panel(
                arch,
                state_dict,
                judges,
                forget_labels,
                samplers,
                real=real_small,
                samples_per_class=int(settings["samples_per_class"]),
                guidance_scale=float(settings["guidance_scale"]),
                batch_size=int(settings["batch_size"]),
                device=str(settings["device"]),
                callbacks_for=callbacks_for,
                factors=factors,
                generator=generator_for(state_dict) if generator_for is not None else None,
            )
            if i == 0 and int(settings.get("attack_steps") or 0) > 0:
                if generator_for is None:
                    result["attack"] = _attack(
                        ctx, arch, state_dict, judge, forget_labels, real_small, settings
                    )
                elif attack_for is not None:
                    result["attack"] = attack_for(
                        state_dict, judge, forget_labels, real_small, settings
                    )
        except EngineError as exc:
            raise stop_reason(ctx, exc) from exc
        result["per_class_accuracy"] = {str(k): v for k, v in result["per_class_accuracy"].items()}
        out[name] = result
    return out


def _attack(
    ctx: JobContext,
    arch: DiffusionArchitecture,
    state_dict: Mapping[str, torch.Tensor],
    judge: Judge,
    forget_labels: list[int],
    real: ImageArrays | None,
    settings: dict[str, Any],
) -> dict[str, Any] | None:
    """The class-embedding attack against the erased classes, on real images of them."""
    if real is None or not np.isin(real.labels, forget_labels).any():
        ctx.log("attack skipped: no real images of the erased classes")
        return None
    ctx.log(f"attack: {settings['attack_steps']} steps on the class embedding")
    return embedding_attack(
        arch,
        state_dict,
        judge,
        forget_labels,
        real,
        steps=int(settings["attack_steps"]),
        lr=float(settings["attack_lr"]),
        samples_per_class=int(settings["samples_per_class"]),
        guidance_scale=float(settings["guidance_scale"]),
        num_inference_steps=int(settings["num_inference_steps"]),
        scheduler=settings["scheduler"],
        seed=int(settings["seed"]),
        device=str(settings["device"]),
    )


def emit_judge_metrics(ctx: JobContext, evaluation: dict[str, Any] | None) -> None:
    for key in ("forget_rate", "retain_accuracy", "frechet_retain", "frechet_forget"):
        if evaluation and key in evaluation:
            ctx.metric(key, evaluation[key])
    worst = (evaluation or {}).get("worst") or {}
    for key, value in worst.items():
        ctx.metric(f"worst_{key}", value)
    attack = (evaluation or {}).get("attack")
    if attack:
        ctx.metric("attack_success_rate", attack["attack_success_rate"])


# --------------------------------------------------------------------------- unlearn


def retrain_recipe(
    recipe: DiffusionTrainParams, raw_params: dict[str, Any]
) -> DiffusionTrainParams:
    """The version's training recipe under the ``retrain`` method's options
    (train_steps, use_recipe_seed, device); shared by the ddpm and text2image retrains."""
    params: Any = get_diffusion_method("retrain").parse_params(raw_params)
    updates: dict[str, Any] = {}
    if params.train_steps is not None:
        updates["steps"] = params.train_steps
        updates["lr_warmup_steps"] = min(recipe.lr_warmup_steps, params.train_steps - 1)
    if not params.use_recipe_seed:
        updates["seed"] = params.seed
    if params.device != "auto":
        updates["device"] = params.device
    return recipe.model_copy(update=updates)


def _retrain_without(
    arch: DiffusionArchitecture,
    recipe: DiffusionTrainParams,
    retain: ImageArrays,
    raw_params: dict[str, Any],
    callbacks: ContextCallbacks,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Exact unlearning of samples or subjects: the original recipe on what remains
    (the ``retrain`` method's own options: train_steps, use_recipe_seed, device)."""
    recipe = retrain_recipe(recipe, raw_params)
    callbacks.on_log(f"retrain: {recipe.steps} steps on the {len(retain)} remaining images")
    trained = train_ddpm(arch, recipe, retain, callbacks=callbacks)
    return trained.state_dict, {f"train/{k}": float(v) for k, v in trained.metrics.items()}


def run_unlearn_ddpm(ctx: JobContext, job: Job) -> dict[str, Any]:
    spec = job.spec
    reader = ShardReader(ctx.store)
    number = int(spec["dataset_version"])
    judge_settings = {**DEFAULT_JUDGE, **(spec.get("judge") or {})}
    with ctx.factory() as session:
        original = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        dataset = session.get(Dataset, spec["dataset_id"])
        assert original is not None and model is not None and dataset is not None
        arch = DiffusionArchitecture.model_validate(model.architecture)
        split, size = version_split(session, reader, job, original)
        real = (
            load_real(session, reader, spec["dataset_id"], number, judge_settings["real_images"])
            if spec.get("evaluate", True) and spec["forget_kind"] == "labels"
            else None
        )
        session.expunge(dataset)
    recipe = DiffusionTrainParams.model_validate(original.config.get("train_params") or {})
    forget, retain = split.forget, split.retain
    ctx.log(f"{job.method}: forgetting {len(forget)} of {len(split.trained.arrays)} samples")
    weights = load_version_weights(ctx, original)
    callbacks = ContextCallbacks(ctx, progress_span=(0.02, 0.7))
    started = time.perf_counter()
    trained_keys: list[str] | None = None
    try:
        if split.forget_labels:
            data = DiffusionUnlearnData(
                forget_labels=sorted(set(split.forget_labels)), forget=forget, retain=retain
            )
            result = get_diffusion_method(job.method).run(
                arch, weights, data, job.params, callbacks, train_params=recipe
            )
            for line in result.log[-20:]:
                ctx.log(line)
            new_weights, method_metrics = result.state_dict, dict(result.metrics)
            trained_keys = result.trained_keys
        else:
            if job.method != "retrain":  # the API refuses this; a stale job row may not
                raise ValueError(f"ddpm method {job.method!r} erases classes only")
            new_weights, method_metrics = _retrain_without(
                arch, recipe, retain, job.params, callbacks
            )
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    seconds = time.perf_counter() - started

    metrics: dict[str, Any] = {
        "method": job.method,
        "exact": bool(spec.get("exact")),
        "unlearn_seconds": seconds,
        "forget_count": len(forget),
        "retain_count": len(retain),
        "method_metrics": {k: float(v) for k, v in method_metrics.items()},
    }
    erased = sorted(set(split.forget_labels or []))
    if spec.get("evaluate", True) and erased:
        metrics.update(
            judge_versions(
                ctx,
                arch,
                {"evaluation": new_weights, "original_evaluation": weights},
                erased,
                dataset,
                real,
                judge_settings,
                progress_span=(0.7, 0.95),
                number=number,
                dataset_version_id=spec["dataset_version_id"],
            )
        )
        emit_judge_metrics(ctx, metrics.get("evaluation"))
    elif spec.get("evaluate", True):
        metrics["judge"] = None
        metrics["judge_reason"] = "the judge scores erased classes; this scope names samples"
    ctx.progress(0.96, force=True)

    with tempfile.TemporaryDirectory(prefix="expunge-delta-") as tmp:
        extra_paths: dict[str, tuple[Path, dict[str, Any]]] = {}
        if trained_keys is not None:
            delta_path = Path(tmp) / "delta.safetensors"
            _, changed = save_delta(
                delta_path,
                weights,
                new_weights,
                original.sha256,
                info={"method": job.method, "parent_version_id": original.id},
            )
            changed_params = sum(new_weights[k].numel() for k in changed)
            metrics["delta"] = {
                "changed_tensors": len(changed),
                "changed_fraction": changed_params / max(count_parameters(arch), 1),
            }
            extra_paths["delta"] = (
                delta_path,
                {"format": DELTA_FORMAT, "parent_sha256": original.sha256, **metrics["delta"]},
            )
        config = _version_config(
            arch,
            train_params=recipe.model_dump(mode="json"),
            dataset_id=spec["dataset_id"],
            dataset_version_id=spec["dataset_version_id"],
            parent_version_id=original.id,
            unlearning=unlearning_record(
                job,
                bool(spec.get("exact")),
                forget_count=len(forget),
                forget_labels=erased or None,
            ),
        )
        publish_version(
            ctx,
            job,
            VersionOutput(
                model_id=model.id,
                source="unlearn",
                state_dict=new_weights,
                config=config,
                metrics=metrics,
                trained_sample_ids=retain.sample_ids,
                trained_positions=split.retain_positions,
                dataset_size=size,
                dataset_version_id=spec["dataset_version_id"],
                parent_version_id=original.id,
                extra_paths=extra_paths,
            ),
        )
    return metrics


# --------------------------------------------------------------------------- evaluate


def run_evaluate_ddpm(ctx: JobContext, job: Job) -> dict[str, Any]:
    spec = job.spec
    reader = ShardReader(ctx.store)
    settings = {**DEFAULT_JUDGE, **(spec.get("judge") or {})}
    number = int(spec["dataset_version"])
    forget_labels = sorted({int(c) for c in (spec.get("forget") or {}).get("labels") or []})
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        dataset = session.get(Dataset, job.dataset_id)
        assert version is not None and model is not None and dataset is not None
        arch = DiffusionArchitecture.model_validate(model.architecture)
        real = load_real(session, reader, dataset.id, number, settings["real_images"])
        session.expunge(dataset)
    weights = load_version_weights(ctx, version)
    metrics = judge_versions(
        ctx,
        arch,
        {"evaluation": weights},
        forget_labels,
        dataset,
        real,
        settings,
        progress_span=(0.05, 0.95),
        number=number,
        dataset_version_id=str(spec.get("dataset_version_id") or f"{dataset.id}:v{number}"),
    )
    emit_judge_metrics(ctx, metrics.get("evaluation"))
    succeed(ctx, job, metrics)
    return metrics
