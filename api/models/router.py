from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from api.deps import Compliance, Engineer, Reader, SessionDep, SettingsDep, StoreDep
from api.jobs.schemas import JudgeParams
from api.methods.service import method_info, validate_params
from api.models import repository, service
from api.models.schemas import (
    DeletionPolicyBody,
    JobRef,
    LineagePublic,
    ModelCreate,
    ModelPublic,
    ModelVersionPublic,
    TrainingSetPublic,
)
from api.ratelimit import rate_limit
from api.schemas import CONFLICT, ERRORS, FORM_TEXT, NOT_FOUND, Page, hostile_values
from core.audit.log import record
from core.deletion.policy import DeletionPolicy
from core.errors import PayloadTooLarge, Unprocessable
from models import Model

router = APIRouter(tags=["models"], responses=ERRORS)


def _public(session: SessionDep, model: Model) -> ModelPublic:
    out = ModelPublic.model_validate(model)
    out.latest_version = repository.latest_version_number(session, model.id)
    return out


@router.post(
    "/models", status_code=status.HTTP_201_CREATED, response_model=ModelPublic, responses=CONFLICT
)
def create_model(body: ModelCreate, session: SessionDep, key: Engineer) -> ModelPublic:
    assert body.family is not None  # filled in from the architecture by the schema
    model = service.create_model(
        session, body.name, body.family, body.architecture, body.description, key.id
    )
    return _public(session, model)


@router.get("/models", response_model=Page[ModelPublic])
def list_models(
    session: SessionDep,
    _: Reader,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ModelPublic]:
    rows = repository.page(session, cursor, limit + 1)
    return Page(
        data=[_public(session, m) for m in rows[:limit]],
        count=repository.count(session),
        next_cursor=rows[limit - 1].id if len(rows) > limit else None,
    )


@router.get("/models/{model_id}", response_model=ModelPublic, responses=NOT_FOUND)
def get_model(model_id: str, session: SessionDep, _: Reader) -> ModelPublic:
    return _public(session, service.get_model_or_404(session, model_id))


@router.post(
    "/models/{model_id}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelVersionPublic,
    responses={**NOT_FOUND, 413: {"description": "Upload over the size limit"}},
    dependencies=[rate_limit("uploads"), FORM_TEXT],
)
def upload_version(
    model_id: str,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    key: Engineer,
    checkpoint: Annotated[
        UploadFile,
        File(
            description="A .safetensors file or a PyTorch state dict (.pt/.pth, weights only); "
            "for a ddpm model, the UNet2DModel state dict of its architecture; for a "
            "stable_diffusion model, a tar or zip of a diffusers pipeline folder; for a "
            "causal_lm model (base 'uploaded'), a tar or zip of a Hugging Face causal-LM "
            "folder (config.json, *.safetensors, tokenizer files; no pickle, no remote code)"
        ),
    ],
    metrics: Annotated[
        str, Form(max_length=20_000, description="Optional JSON object of reported metrics")
    ] = "{}",
) -> ModelVersionPublic:
    model = service.get_model_or_404(session, model_id)
    try:
        reported = json.loads(metrics)
    except json.JSONDecodeError as exc:
        raise Unprocessable(f"metrics is not valid JSON: {exc}", field="metrics") from exc
    if not isinstance(reported, dict):
        raise Unprocessable("metrics must be a JSON object", field="metrics")
    if hostile_values(reported):
        raise Unprocessable(
            "metrics may not hold NUL characters, NaN or Infinity; remove them", field="metrics"
        )
    filename = Path(checkpoint.filename or "checkpoint.bin").name
    with tempfile.TemporaryDirectory(prefix="expunge-upload-") as tmp:
        path = Path(tmp) / "upload.bin"
        with path.open("wb") as out:
            shutil.copyfileobj(checkpoint.file, out, length=1 << 20)
        if path.stat().st_size > settings.max_upload_bytes:
            raise PayloadTooLarge(f"upload is over the {settings.max_upload_bytes} byte limit")
        version = service.upload_version(session, store, model, path, filename, reported, key.id)
    return ModelVersionPublic.model_validate(version)


@router.get(
    "/models/{model_id}/versions", response_model=Page[ModelVersionPublic], responses=NOT_FOUND
)
def list_versions(
    model_id: str,
    session: SessionDep,
    _: Reader,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(active|tainted|retired|purged)$")
    ] = None,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,9}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ModelVersionPublic]:
    service.get_model_or_404(session, model_id)
    rows = repository.versions(session, model_id, status_, cursor, limit + 1)
    data = [ModelVersionPublic.model_validate(v) for v in rows[:limit]]
    return Page(
        data=data,
        count=len(data),
        next_cursor=str(rows[limit - 1].version) if len(rows) > limit else None,
    )


@router.get("/model-versions/{version_id}", response_model=ModelVersionPublic, responses=NOT_FOUND)
def get_version(version_id: str, session: SessionDep, _: Reader) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(service.get_version_or_404(session, version_id))


@router.get(
    "/model-versions/{version_id}/lineage", response_model=LineagePublic, responses=NOT_FOUND
)
def get_lineage(version_id: str, request: Request, session: SessionDep, _: Reader) -> LineagePublic:
    found = service.lineage(session, service.get_version_or_404(session, version_id))
    training_set = None
    if found["training_set"] is not None:
        training_set = TrainingSetPublic(
            **found["training_set"],
            sample_ids_url=str(request.url_for("get_sample_ids", version_id=version_id)),
        )
    job = found["job"]
    return LineagePublic(
        version=ModelVersionPublic.model_validate(found["version"]),
        ancestors=[ModelVersionPublic.model_validate(v) for v in found["ancestors"]],
        children=[ModelVersionPublic.model_validate(v) for v in found["children"]],
        job=JobRef(id=job.id, kind=job.kind, state=job.state, method=job.method) if job else None,
        training_set=training_set,
    )


@router.get(
    "/model-versions/{version_id}/sample-ids",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"text/plain": {}}}},
)
def get_sample_ids(
    version_id: str, session: SessionDep, store: StoreDep, _: Reader
) -> StreamingResponse:
    """The exact, sorted sample ids the version was trained on, one per line."""
    version = service.get_version_or_404(session, version_id)
    if not version.sample_ids_key:
        raise Unprocessable(f"model version {version_id} was uploaded, not trained: no sample list")
    return StreamingResponse(store.iter_chunks(version.sample_ids_key), media_type="text/plain")


@router.get(
    "/model-versions/{version_id}/checkpoint",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, **CONFLICT, 200: {"content": {"application/octet-stream": {}}}},
)
def download_checkpoint(
    version_id: str, session: SessionDep, store: StoreDep, _: Reader
) -> StreamingResponse:
    version = service.get_version_or_404(session, version_id)
    service.ensure_downloadable(version)
    return StreamingResponse(
        store.iter_chunks(version.checkpoint_key),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{version_id}.safetensors"',
            "X-Checkpoint-SHA256": version.sha256,
            "Content-Length": str(version.size_bytes),
        },
    )


@router.get(
    "/models/{model_id}/deletion-policy", response_model=DeletionPolicy, responses=NOT_FOUND
)
def get_deletion_policy(model_id: str, session: SessionDep, _: Reader) -> DeletionPolicy:
    """How deletion requests unlearn this model: method, thresholds, fallback."""
    model = service.get_model_or_404(session, model_id)
    return DeletionPolicy.for_family(model.family, model.deletion_policy)


@router.put(
    "/models/{model_id}/deletion-policy", response_model=DeletionPolicy, responses=NOT_FOUND
)
def put_deletion_policy(
    model_id: str, body: DeletionPolicyBody, session: SessionDep, key: Compliance
) -> DeletionPolicy:
    model = service.get_model_or_404(session, model_id)
    # Fields left out take the family's defaults (a ddpm erases classes with esd).
    body = DeletionPolicy.for_family(model.family, body.model_dump(exclude_unset=True))
    if body.judge:
        try:
            JudgeParams.model_validate(body.judge)
        except ValidationError as exc:
            raise Unprocessable(f"judge: {exc.errors()[0]['msg']}", field="judge") from exc
    for name in (body.method, body.class_method, body.fallback):
        method_info(name, model.family)  # 422 for a method unknown to the model's family
    validate_params(body.method, body.method_params, model.family)
    validate_params(body.class_method, body.class_method_params, model.family)
    model.deletion_policy = body.model_dump(mode="json")
    # The whole policy (methods, thresholds): no personal data, and what a later
    # certificate's evidence was judged against.
    record(session, key.id, "deletion_policy.updated", "model", model.id, model.deletion_policy)
    return body
