"""Generation job: a ddpm version + GenerateParams → one PNG per image, a grid PNG and a
manifest in object storage under ``jobs/<id>/generated/``, listed in ``job.artifacts``.

Every image has its own seeded generator (``workers.engine.diffusion.models.generate``),
and PNG encoding is deterministic, so the same request gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from contracts.ddpm import DiffusionArchitecture, GenerateParams
from models import Job, Model, ModelVersion
from workers.context import JobContext
from workers.engine.diffusion.models import generate, grid_png
from workers.engine.errors import EngineError
from workers.jobs.common import ContextCallbacks, stop_reason
from workers.jobs.publish import load_version_weights, succeed


def generated_prefix(job_id: str) -> str:
    """Under the job's own prefix, which the runner removes if the job does not succeed."""
    return f"jobs/{job_id}/generated"


def run_generate(ctx: JobContext, job: Job) -> dict[str, Any]:
    params = GenerateParams.model_validate(job.params)
    columns = int(job.spec.get("grid_columns", 8))
    with ctx.factory() as session:
        version = session.get(ModelVersion, job.model_version_id)
        model = session.get(Model, job.model_id)
        assert version is not None and model is not None
        arch = DiffusionArchitecture.model_validate(model.architecture)
        if version.status in ("tainted", "purged"):
            raise ValueError(f"model version {version.id} became {version.status}; not generating")
        session.expunge(version)
    weights = load_version_weights(ctx, version)
    ctx.log(
        f"generating {len(params.labels)} images with {params.scheduler} "
        f"({params.num_inference_steps} steps, guidance {params.guidance_scale})"
    )
    try:
        out = generate(arch, weights, params, ContextCallbacks(ctx, progress_span=(0.02, 0.9)))
    except EngineError as exc:
        raise stop_reason(ctx, exc) from exc

    prefix = generated_prefix(job.id)
    grid = grid_png(out.images, nrow=columns)
    ctx.store.put_bytes(f"{prefix}/grid.png", grid, content_type="image/png")
    artifacts: list[dict[str, Any]] = [
        {"name": "grid.png", "key": f"{prefix}/grid.png", "sha256": _sha(grid)}
    ]
    images: list[dict[str, Any]] = []
    for i, (image, label, seed) in enumerate(zip(out.images, out.labels, out.seeds, strict=True)):
        ctx.check()
        png = grid_png(image[None], nrow=1, padding=0)
        name = f"image-{i:04d}.png"
        ctx.store.put_bytes(f"{prefix}/{name}", png, content_type="image/png")
        entry = {"name": name, "label": int(label), "seed": int(seed), "sha256": _sha(png)}
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


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
