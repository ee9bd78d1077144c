from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status

from api.datasets import repository, service
from api.datasets.schemas import (
    DatasetCreate,
    DatasetPublic,
    DatasetVersionPublic,
    SamplePublic,
    SamplesPage,
    SourcePublic,
)
from api.deps import Engineer, Reader, SessionDep, SettingsDep, StoreDep
from api.ratelimit import rate_limit
from api.schemas import CONFLICT, ERRORS, FORM_TEXT, NOT_FOUND, Page
from core.datasets.shards import encode_png
from core.datasets.text_shards import is_text_shard
from core.errors import NotFound, PayloadTooLarge, Unprocessable
from models import Dataset

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=ERRORS)


def _public(session: SessionDep, dataset: Dataset) -> DatasetPublic:
    version = repository.version(session, dataset.id, dataset.current_version)
    out = DatasetPublic.model_validate(dataset)
    out.num_samples = version.num_samples if version else 0
    out.num_subjects = repository.subject_count(session, dataset.id, dataset.current_version)
    return out


@router.get("/sources", response_model=list[SourcePublic])
def list_sources(_: Reader) -> list[SourcePublic]:
    return [SourcePublic.model_validate(s) for s in service.sources()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    responses={**CONFLICT, 422: {"description": "Unknown or unavailable source"}},
    dependencies=[rate_limit("uploads")],
)
def create_dataset(
    body: DatasetCreate, session: SessionDep, store: StoreDep, key: Engineer
) -> DatasetPublic:
    dataset = service.create_from_builtin(
        session, store, body.name, body.source.name, body.source.limit, body.description, key.id
    )
    return _public(session, dataset)


@router.post(
    "/upload",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    responses={**CONFLICT, 413: {"description": "Upload over the size limit"}},
    dependencies=[rate_limit("uploads"), FORM_TEXT],
)
def upload_dataset(
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    key: Engineer,
    file: Annotated[
        UploadFile,
        File(
            description="A .zip / .tar / .tar.gz image-folder archive, or a .jsonl / .csv / "
            ".parquet file of text records"
        ),
    ],
    name: Annotated[str, Form(pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")],
    description: Annotated[str, Form(max_length=5000)] = "",
    image_height: Annotated[int | None, Form(ge=4, le=512)] = None,
    image_width: Annotated[int | None, Form(ge=4, le=512)] = None,
    channels: Annotated[int | None, Form(ge=1, le=3)] = None,
    modality: Annotated[
        Literal["images", "text"] | None,
        Form(description="images or text; by default from the file's suffix"),
    ] = None,
    require_subjects: Annotated[
        bool,
        Form(
            description="Text only: refuse a record without subject_id (so a deletion "
            "request can find every person's records). Default true."
        ),
    ] = True,
) -> DatasetPublic:
    if (image_height is None) != (image_width is None):
        raise Unprocessable(
            "give both image_height and image_width, or neither", field="image_width"
        )
    size = (image_height, image_width) if image_height and image_width else None
    with tempfile.TemporaryDirectory(prefix="expunge-upload-") as tmp:
        filename = Path(file.filename or "upload.bin").name
        path = Path(tmp) / filename
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, length=1 << 20)
        if path.stat().st_size > settings.max_upload_bytes:
            raise PayloadTooLarge(f"upload is over the {settings.max_upload_bytes} byte limit")
        dataset = service.create_from_upload(
            session,
            store,
            path,
            filename,
            name,
            description,
            size,
            channels,
            key.id,
            modality=modality,
            require_subjects=require_subjects,
        )
    return _public(session, dataset)


@router.get("", response_model=Page[DatasetPublic])
def list_datasets(
    session: SessionDep,
    _: Reader,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[DatasetPublic]:
    rows = repository.page(session, cursor, limit + 1)
    data = [_public(session, d) for d in rows[:limit]]
    return Page(
        data=data,
        count=repository.count(session),
        next_cursor=rows[limit - 1].id if len(rows) > limit else None,
    )


@router.get("/{dataset_id}", response_model=DatasetPublic, responses=NOT_FOUND)
def get_dataset(dataset_id: str, session: SessionDep, _: Reader) -> DatasetPublic:
    return _public(session, service.get_or_404(session, dataset_id))


@router.get(
    "/{dataset_id}/versions", response_model=list[DatasetVersionPublic], responses=NOT_FOUND
)
def list_versions(dataset_id: str, session: SessionDep, _: Reader) -> list[DatasetVersionPublic]:
    service.get_or_404(session, dataset_id)
    return [
        DatasetVersionPublic.model_validate(v) for v in repository.versions(session, dataset_id)
    ]


@router.get("/{dataset_id}/samples", response_model=SamplesPage, responses=NOT_FOUND)
def list_samples(
    dataset_id: str,
    request: Request,
    session: SessionDep,
    _: Reader,
    label: int | None = None,
    subject_id: Annotated[str | None, Query(max_length=200)] = None,
    split: Annotated[str | None, Query(pattern="^(train|test)$")] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SamplesPage:
    dataset = service.get_or_404(session, dataset_id)
    number = version or dataset.current_version
    if repository.version(session, dataset_id, number) is None:
        raise Unprocessable(f"dataset {dataset_id} has no version {number}", field="version")
    rows = repository.samples_page(
        session,
        dataset_id,
        number,
        label=label,
        subject_id=subject_id,
        split=split,
        after_pk=service.decode_cursor(cursor),
        limit=limit + 1,
    )
    names = dataset.label_names
    base = str(request.url_for("get_sample_image", dataset_id=dataset_id, sample_id="_"))
    reader = request.app.state.shard_reader
    data = []
    for s in rows[:limit]:
        sample = SamplePublic(
            sample_id=s.sample_id,
            subject_id=s.subject_id,
            label=s.label,
            label_name=names[s.label] if s.label is not None and s.label < len(names) else None,
            caption=s.caption,
            split=s.split,
        )
        if dataset.modality == "text":
            # A sample deleted since (listed for an older version) had its text purged:
            # it is listed without it, as a deleted image's URL answers 404.
            if s.removed_in_version is None:
                for field, value in reader.text(s.shard_key, s.shard_index).items():
                    setattr(sample, field, value)
        else:
            sample.image_url = base.replace("/_/image", f"/{quote(s.sample_id, safe='')}/image")
        data.append(sample)
    more = len(rows) > limit
    return SamplesPage(
        data=data,
        count=len(data),
        next_cursor=service.encode_cursor(rows[limit - 1].pk) if more else None,
    )


@router.get(
    "/{dataset_id}/samples/{sample_id:path}/image",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/png": {}}}},
)
def get_sample_image(
    dataset_id: str, sample_id: str, request: Request, session: SessionDep, _: Reader
) -> Response:
    sample = service.sample_or_404(session, dataset_id, sample_id)
    if is_text_shard(sample.shard_key):
        raise NotFound(f"sample {sample_id!r} is text; it has no image (list the samples)")
    if sample.removed_in_version is not None:
        raise NotFound(
            f"sample {sample_id!r} was deleted (dataset version {sample.removed_in_version})"
        )
    image = request.app.state.shard_reader.image(sample.shard_key, sample.shard_index)
    return Response(
        encode_png(image), media_type="image/png", headers={"Cache-Control": "max-age=3600"}
    )
