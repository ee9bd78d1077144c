"""Models and their versions: registration, checkpoint upload, lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api.models import lm_upload, repository
from contracts import get_family
from contracts.causal_lm import LM_FOLDER_UPLOAD
from contracts.common import PIPELINE_UPLOAD, SD_PIPELINE_FORMAT
from core.audit.log import record
from core.errors import Conflict, NotFound, Unprocessable
from core.registry import add_model_version, version_prefix
from core.storage import ObjectStore
from models import DatasetVersion, Job, Model, ModelVersion
from models.base import new_id

VALIDATE_TIMEOUT_S = 180


def create_model(
    session: Session,
    name: str,
    family: str,
    architecture: Any,
    description: str,
    created_by: str | None,
) -> Model:
    if repository.get_by_name(session, name) is not None:
        raise Conflict(f"a model named {name!r} already exists; pick another name")
    model = Model(
        id=new_id("mdl"),
        name=name,
        family=family,
        architecture=architecture.model_dump(mode="json"),
        description=description,
        created_by=created_by,
    )
    session.add(model)
    session.flush()
    record(
        session,
        created_by or "system",
        "model.created",
        "model",
        model.id,
        {"family": family, "architecture": model.architecture.get("name")},
    )
    return model


def get_model_or_404(session: Session, model_id: str) -> Model:
    model = repository.get(session, model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


def get_version_or_404(session: Session, version_id: str) -> ModelVersion:
    version = repository.version(session, version_id)
    if version is None:
        raise NotFound(f"model version {version_id} not found")
    return version


def validate_checkpoint(architecture: dict[str, Any], source: Path, target: Path) -> dict[str, Any]:
    """Check and normalise an uploaded checkpoint in a child process.

    The API process never imports torch and never parses untrusted tensors itself: the
    engine's checkpoint tool does, with ``weights_only=True``, and writes safetensors.
    A DDPM architecture (``family: ddpm``) is checked against the UNet's expected shapes.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "workers.engine.checkpoint_tool",
                "--arch",
                json.dumps(architecture),
                "--input",
                str(source),
                "--output",
                str(target),
            ],
            capture_output=True,
            text=True,
            timeout=VALIDATE_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise Unprocessable(
            "checkpoint validation timed out; is this a checkpoint?", field="file"
        ) from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"checkpoint tool gave no report (exit {proc.returncode}): {proc.stderr[-500:]}"
        )
    report = json.loads(lines[-1])
    if not report.get("ok"):
        raise Unprocessable(report.get("error", "invalid checkpoint"), field="file")
    return report


def validate_sd_archive(source: Path, target: Path) -> dict[str, Any]:
    """Check an uploaded diffusers Stable Diffusion archive in a child process (unpacked
    safely, components and configs checked, loaded locally) and repack it to ``target``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "workers.engine.diffusion.sd_tool"]
    try:
        proc = subprocess.run(
            [*command, "--input", str(source), "--output", str(target)],
            capture_output=True,
            text=True,
            timeout=VALIDATE_TIMEOUT_S,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise Unprocessable("pipeline validation timed out", field="checkpoint") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"pipeline tool gave no report (exit {proc.returncode}): {proc.stderr[-500:]}"
        )
    report = json.loads(lines[-1])
    if not report.get("ok"):
        raise Unprocessable(report.get("error", "invalid diffusers folder"), field="checkpoint")
    return report


def _upload_pipeline(
    session: Session,
    store: ObjectStore,
    model: Model,
    upload: Path,
    filename: str,
    metrics: dict[str, Any],
    created_by: str | None,
) -> ModelVersion:
    """A stable_diffusion version: the checked folder stored as one tar."""
    version_id = new_id("mv")
    with tempfile.TemporaryDirectory(prefix="expunge-sd-") as tmp:
        packed = Path(tmp) / "pipeline.tar"
        report = validate_sd_archive(upload, packed)
        config = {
            "format": SD_PIPELINE_FORMAT,
            "architecture": model.architecture,
            "pipeline": report["info"],
            "source": {"type": "upload", "filename": filename},
            "num_parameters": report["info"].get("num_parameters"),
        }
        return _store_upload(
            session, store, model, version_id, packed, config, report["sha256"], metrics, created_by
        )


def _store_upload(
    session: Session,
    store: ObjectStore,
    model: Model,
    version_id: str,
    weights: Path,
    config: dict[str, Any],
    sha256: str,
    metrics: dict[str, Any],
    created_by: str | None,
    extra: dict[str, Path] | None = None,
) -> ModelVersion:
    """Objects first, then the row; the objects go again if the row cannot be written.
    ``extra`` files are stored beside the weights under their names (``config`` may
    point at them: ``hf_files_key``)."""
    prefix = version_prefix(model.id, version_id)
    for name, path in (extra or {}).items():
        store.put_file(f"{prefix}/{name}", path)
    info = store.put_file(f"{prefix}/{weights.name}", weights)
    blob = json.dumps(config, sort_keys=True, indent=2).encode()
    store.put_bytes(f"{prefix}/config.json", blob, content_type="application/json")
    try:
        return add_model_version(
            session,
            model.id,
            id=version_id,
            status="active",
            source="upload",
            checkpoint_key=f"{prefix}/{weights.name}",
            config_key=f"{prefix}/config.json",
            sha256=sha256,
            size_bytes=info.size,
            config=config,
            metrics=metrics,
            created_by=created_by,
        )
    except BaseException:
        store.delete_prefix(prefix + "/")
        raise


def _upload_lm_folder(
    session: Session,
    store: ObjectStore,
    model: Model,
    upload: Path,
    filename: str,
    metrics: dict[str, Any],
    created_by: str | None,
) -> ModelVersion:
    """A causal_lm version from a Hugging Face folder (``api.models.lm_upload``): one
    safetensors checkpoint and ``hf_files.json``, as a fine-tune's version is stored."""
    lm_upload.check_architecture(model.architecture)
    version_id = new_id("mv")
    prefix = version_prefix(model.id, version_id)
    with tempfile.TemporaryDirectory(prefix="expunge-lm-") as tmp:
        weights, files, found = lm_upload.prepare(upload, Path(tmp))
        config = {
            **found,
            "architecture": model.architecture,
            "source": {"type": "upload", "filename": filename},
            "hf_files_key": f"{prefix}/{files.name}",
        }
        return _store_upload(
            session,
            store,
            model,
            version_id,
            weights,
            config,
            found["base"]["sha256"],
            metrics,
            created_by,
            extra={files.name: files},
        )


def upload_version(
    session: Session,
    store: ObjectStore,
    model: Model,
    upload: Path,
    filename: str,
    metrics: dict[str, Any],
    created_by: str | None,
) -> ModelVersion:
    uploadable = get_family(model.family).uploadable
    if PIPELINE_UPLOAD in uploadable:
        return _upload_pipeline(session, store, model, upload, filename, metrics, created_by)
    if LM_FOLDER_UPLOAD in uploadable:
        return _upload_lm_folder(session, store, model, upload, filename, metrics, created_by)
    if not uploadable:
        raise Unprocessable(f"checkpoint upload is not supported for family {model.family!r}")
    version_id = new_id("mv")
    with tempfile.TemporaryDirectory(prefix="expunge-ckpt-") as tmp:
        normalised = Path(tmp) / "model.safetensors"
        report = validate_checkpoint(model.architecture, upload, normalised)
        config = {
            "architecture": model.architecture,
            "source": {"type": "upload", "filename": filename},
            "num_parameters": report.get("num_parameters"),
        }
        return _store_upload(
            session,
            store,
            model,
            version_id,
            normalised,
            config,
            report["sha256"],
            metrics,
            created_by,
        )


def lineage(session: Session, version: ModelVersion) -> dict[str, Any]:
    ancestors: list[ModelVersion] = []
    seen = {version.id}
    parent_id = version.parent_version_id
    while parent_id and parent_id not in seen:
        parent = repository.version(session, parent_id)
        if parent is None:
            break
        ancestors.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_version_id
    job = session.get(Job, version.job_id) if version.job_id else None
    training_set = None
    if version.training_set and version.dataset_version_id:
        dsv = session.get(DatasetVersion, version.dataset_version_id)
        if dsv is not None:
            training_set = {
                **version.training_set,
                "dataset_id": dsv.dataset_id,
                "dataset_version": dsv.version,
                "dataset_version_id": dsv.id,
                "content_hash": dsv.content_hash,
            }
    return {
        "version": version,
        "ancestors": ancestors,
        "children": list(repository.children(session, version.id)),
        "job": job,
        "training_set": training_set,
    }


def ensure_downloadable(version: ModelVersion) -> None:
    if version.status in ("tainted", "purged"):
        raise Conflict(
            f"model version {version.id} is {version.status}: its checkpoint cannot be "
            "downloaded (it depends on data under a deletion request, or was purged)"
        )
