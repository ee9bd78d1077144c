"""Dataset registration: built-in sources and uploads become shards + sample rows.

Shards are written to object storage before the rows are flushed; if anything fails
the shards written so far are deleted, so storage never holds bytes the database forgot.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from api.datasets import repository
from core.audit.log import record as audit_record
from core.datasets.builtin import list_builtin, load_builtin
from core.datasets.errors import DatasetImportError
from core.datasets.records import DatasetImport
from core.datasets.shards import encode_shard, shard_slices
from core.datasets.text import TextDatasetImport
from core.datasets.text_shards import TEXT_SHARD_SUFFIX, encode_text_shard, text_shard_slices
from core.datasets.text_uploads import import_text_file, is_text_upload
from core.datasets.uploads import import_archive, import_manifest
from core.errors import Conflict, NotFound, Unprocessable
from core.storage import ObjectStore
from models import Dataset, DatasetVersion, Sample
from models.base import new_id


def sources() -> list[dict[str, object]]:
    return list_builtin()


def get_or_404(session: Session, dataset_id: str) -> Dataset:
    dataset = repository.get(session, dataset_id)
    if dataset is None:
        raise NotFound(f"dataset {dataset_id} not found")
    return dataset


def _check_name_free(session: Session, name: str) -> None:
    if repository.get_by_name(session, name) is not None:
        raise Conflict(f"a dataset named {name!r} already exists; pick another name")


def create_from_builtin(
    session: Session,
    store: ObjectStore,
    name: str,
    source: str,
    limit: int | None,
    description: str,
    created_by: str | None,
) -> Dataset:
    _check_name_free(session, name)
    try:
        data = load_builtin(source, limit=limit)
    except DatasetImportError as exc:
        raise Unprocessable(str(exc), field="source.name") from exc
    return ingest(session, store, data, name, description or data.description, created_by)


def create_from_upload(
    session: Session,
    store: ObjectStore,
    path: Path,
    filename: str,
    name: str,
    description: str,
    image_size: tuple[int, int] | None,
    channels: int | None,
    created_by: str | None,
    modality: str | None = None,
    require_subjects: bool = True,
) -> Dataset:
    """An upload becomes a dataset: an image archive, or a JSONL/CSV/Parquet text file.

    ``modality`` None means: decided by the file's suffix (a bare CSV or Parquet file has
    no images, so it is text).
    """
    _check_name_free(session, name)
    lowered = filename.lower()
    is_text = is_text_upload(lowered)
    if modality is None:
        modality = "text" if is_text else "images"
    data: DatasetImport | TextDatasetImport
    try:
        if modality == "text":
            if not is_text:
                raise Unprocessable(
                    f"unsupported text upload {filename!r}: send a .jsonl, .csv or .parquet "
                    "file of records with 'text', or 'question' and 'answer'",
                    field="file",
                )
            if image_size is not None or channels is not None:
                raise Unprocessable(
                    "image_height, image_width and channels apply to image uploads only",
                    field="channels" if channels is not None else "image_height",
                )
            data = import_text_file(
                path, name, require_subjects=require_subjects, filename=filename
            )
        else:
            if lowered.endswith((".csv", ".parquet")):
                raise Unprocessable(
                    "a bare manifest has no images; upload a .zip or .tar.gz whose root "
                    "holds manifest.csv and the image files it names (or modality=text "
                    "for a file of text records)",
                    field="file",
                )
            if not lowered.endswith((".zip", ".tar", ".tar.gz", ".tgz")):
                raise Unprocessable(
                    f"unsupported upload {filename!r}: send a .zip, .tar or .tar.gz "
                    "image-folder archive (label/<image> folders, or a manifest.csv at its "
                    "root), or a .jsonl, .csv or .parquet file of text records",
                    field="file",
                )
            data = import_archive(path, name, image_size=image_size, channels=channels)
    except DatasetImportError as exc:
        raise Unprocessable(str(exc), field="file") from exc
    description = description or data.description
    return ingest(session, store, data, name, description, created_by, origin="upload")


def import_local_manifest(
    session: Session,
    store: ObjectStore,
    manifest: Path,
    base_dir: Path,
    name: str,
    created_by: str | None,
) -> Dataset:
    """Server-side import of a CSV/Parquet manifest (used by the CLI on the server host)."""
    _check_name_free(session, name)
    try:
        data = import_manifest(manifest, base_dir, name)
    except DatasetImportError as exc:
        raise Unprocessable(str(exc), field="manifest") from exc
    return ingest(session, store, data, name, data.description, created_by)


def _shard_blobs(
    data: DatasetImport | TextDatasetImport,
) -> Iterator[tuple[slice, bytes, str]]:
    """(rows, shard bytes, key suffix) for each shard of an import, in dataset order."""
    if isinstance(data, TextDatasetImport):
        contents = [record.content() for record in data.records]
        for part in text_shard_slices(contents):
            yield part, encode_text_shard(contents[part]), TEXT_SHARD_SUFFIX
    else:
        for part in shard_slices(data.num_samples):
            yield part, encode_shard(data.images[part]), ".npz"


def ingest(
    session: Session,
    store: ObjectStore,
    data: DatasetImport | TextDatasetImport,
    name: str,
    description: str,
    created_by: str | None,
    origin: str = "import",
) -> Dataset:
    """``origin``: "upload" for a file sent over REST (``dataset.uploaded``).

    Images and text are stored alike: immutable shards, one row per sample pointing at
    (shard, index), version 1 hashed over the shards and the sample ids.
    """
    n = data.num_samples
    # A text dataset has no labels and no image shape.
    modality, label_names, image_shape = "text", [], []
    if isinstance(data, DatasetImport):
        modality, label_names = "images", list(data.label_names)
        image_shape = list(data.image_shape)
    dataset = Dataset(
        id=new_id("ds"),
        name=name,
        description=description,
        source=data.source,
        modality=modality,
        label_names=label_names,
        image_shape=image_shape,
        current_version=1,
        created_by=created_by,
    )
    session.add(dataset)
    written: list[str] = []
    digest = hashlib.sha256()
    rows: list[dict[str, object]] = []
    try:
        for number, (part, blob, suffix) in enumerate(_shard_blobs(data)):
            blob_hash = hashlib.sha256(blob)
            key = f"datasets/{dataset.id}/shards/{number:05d}-{blob_hash.hexdigest()[:16]}{suffix}"
            store.put_bytes(key, blob)
            written.append(key)
            digest.update(blob_hash.digest())
            for offset, record in enumerate(data.records[part]):
                digest.update(record.sample_id.encode() + b"\0")
                rows.append(
                    {
                        "dataset_id": dataset.id,
                        "sample_id": record.sample_id,
                        "subject_id": record.subject_id,
                        "label": getattr(record, "label", None),
                        "caption": getattr(record, "caption", None),
                        "split": record.split,
                        "shard_key": key,
                        "shard_index": offset,
                        "position": part.start + offset,
                        "added_in_version": 1,
                    }
                )
        session.flush()
        repository.insert_samples(session, rows)
        split_counts: dict[str, int] = {}
        for record in data.records:
            split_counts[record.split] = split_counts.get(record.split, 0) + 1
        session.add(
            DatasetVersion(
                id=new_id("dsv"),
                dataset_id=dataset.id,
                version=1,
                content_hash=digest.hexdigest(),
                num_samples=n,
                split_counts=split_counts,
                reason="initial import",
                created_by=created_by,
            )
        )
        session.flush()
    except BaseException:
        for key in written:
            store.delete(key)
        raise
    actor = created_by or "system"
    kind = "upload" if origin == "upload" else str(data.source).split(":", 1)[0]
    audit_record(
        session,
        actor,
        "dataset.uploaded" if origin == "upload" else "dataset.created",
        "dataset",
        dataset.id,
        {"source": data.source if kind == "builtin" else kind, "samples": n},
    )
    audit_record(
        session,
        actor,
        "dataset_version.created",
        "dataset",
        dataset.id,
        {"version": 1, "content_hash": digest.hexdigest(), "samples": n},
    )
    return dataset


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(str(pk).encode()).decode()


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unprocessable(
            "invalid cursor: pass back next_cursor unchanged", field="cursor"
        ) from exc


def sample_or_404(session: Session, dataset_id: str, sample_id: str) -> Sample:
    sample = repository.sample(session, dataset_id, sample_id)
    if sample is None:
        raise NotFound(f"sample {sample_id!r} not found in dataset {dataset_id}")
    return sample
