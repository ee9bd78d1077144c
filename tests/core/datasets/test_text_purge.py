"""A text dataset stored like images: ingest writes text shards and rows, the workers'
reader gets records back per version, and a deletion's purge rewrites the shards so no
stored object holds the person's words any more."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.datasets import service
from core import migrate
from core.datasets.builtin import FICTITIOUS_PEOPLE, load_builtin
from core.datasets.errors import ShardError
from core.datasets.fictitious import generate_people
from core.datasets.reader import ShardReader
from core.datasets.records import DatasetImport, SampleRecord
from core.datasets.shards import decode_shard
from core.datasets.text import TextDatasetImport, TextSampleRecord
from core.datasets.text_shards import text_shard_slices
from core.datasets.text_versions import TextDatasetError, load_text_records
from core.db import make_engine
from core.deletion.purge import delete_samples
from core.settings import Settings
from core.storage import LocalStore
from models import Dataset, DatasetVersion, Sample


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'text.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "objects")


def _shard_keys(store: LocalStore, dataset_id: str) -> list[str]:
    return sorted(store.list(f"datasets/{dataset_id}/shards/"))


def _ingest_people(
    session: Session, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[Dataset, TextDatasetImport]:
    # Small shards, so a person's records sit in a few of many and the rest stay untouched.
    monkeypatch.setattr(
        service, "text_shard_slices", lambda contents: text_shard_slices(contents, 40)
    )
    data = load_builtin(FICTITIOUS_PEOPLE, limit=100)
    assert isinstance(data, TextDatasetImport)
    dataset = service.ingest(session, store, data, "people", data.description, None)
    session.commit()
    return dataset, data


def test_ingest_stores_text_shards_and_rows(
    session: Session, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, data = _ingest_people(session, store, monkeypatch)
    assert dataset.modality == "text" and dataset.label_names == [] and dataset.image_shape == []
    keys = _shard_keys(store, dataset.id)
    assert len(keys) == -(-data.num_samples // 40) and all(k.endswith(".json.gz") for k in keys)
    records = load_text_records(session, ShardReader(store), dataset.id, 1)
    assert len(records) == data.num_samples
    assert [r["sample_id"] for r in records] == sorted(r.sample_id for r in data.records)
    original = {r.sample_id: r.as_dict() for r in data.records}
    for record in records:
        expected = original[record["sample_id"]]
        assert {k: v for k, v in record.items() if k != "position"} == expected
        assert record["position"] == data.position(record["sample_id"])
    test = load_text_records(session, ShardReader(store), dataset.id, 1, split="test")
    assert test and {r["split"] for r in test} == {"test"}
    some = load_text_records(session, ShardReader(store), dataset.id, 1, positions=[0, 3])
    assert sorted(r["position"] for r in some) == [0, 3]


def test_closing_a_request_rewrites_the_shards_without_the_persons_text(
    session: Session, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset, data = _ingest_people(session, store, monkeypatch)
    person = generate_people(seed=0).people[1]
    mine = set(data.subjects()[person.person_id])
    before = _shard_keys(store, dataset.id)
    rows = session.scalars(select(Sample).where(Sample.dataset_id == dataset.id)).all()
    holding = {s.shard_key for s in rows if s.sample_id in mine}
    assert holding and len(holding) < len(before)

    created = delete_samples(
        session,
        store,
        "subject_ids",
        [person.person_id],
        "dr_test",
        commit=lambda value: hashlib.sha256(b"salt" + value.encode()).hexdigest(),
    )
    session.commit()

    assert created == {dataset.id: 2}
    after = _shard_keys(store, dataset.id)
    # The shards that held the person were replaced; the others are the same objects.
    assert not holding & set(after)
    assert set(before) - holding <= set(after) and len(after) == len(before)
    # No stored object holds anything of the person's any more.
    secrets = [person.name.encode(), person.facts["best_work"].encode()]
    for key in after:
        raw = gzip.decompress(store.get_bytes(key))
        assert not any(secret in raw for secret in secrets), key

    reader = ShardReader(store)
    remaining = load_text_records(session, reader, dataset.id, 2)
    assert len(remaining) == data.num_samples - len(mine)
    assert not {r["sample_id"] for r in remaining} & mine
    original = {r.sample_id: r.as_dict() for r in data.records}
    for record in remaining:  # everyone else's text is intact
        assert {k: v for k, v in record.items() if k != "position"} == original[record["sample_id"]]
    # Version 1 still lists the person's rows (lineage), but their text is gone.
    with pytest.raises(ShardError, match="purged"):
        load_text_records(session, reader, dataset.id, 1)
    version = session.scalar(
        select(DatasetVersion).where(
            DatasetVersion.dataset_id == dataset.id, DatasetVersion.version == 2
        )
    )
    assert version is not None and version.num_samples == len(remaining)
    gone = session.scalars(select(Sample).where(Sample.sample_id.in_(mine))).all()
    assert all(s.removed_in_version == 2 and s.subject_id != person.person_id for s in gone)


def test_reading_text_from_an_image_dataset_or_an_empty_split_is_refused(
    session: Session, store: LocalStore
) -> None:
    session.add(Dataset(id="ds_img", name="img", source="s", image_shape=[1, 1, 1]))
    session.flush()
    with pytest.raises(TextDatasetError, match="holds images"):
        load_text_records(session, ShardReader(store), "ds_img", 1)
    data = TextDatasetImport(
        name="t", records=[TextSampleRecord(sample_id="a", text="hello")], source="test"
    )
    dataset = service.ingest(session, store, data, "t", "", None)
    with pytest.raises(TextDatasetError, match="no 'test' records"):
        load_text_records(session, ShardReader(store), dataset.id, 1, split="test")
    with pytest.raises(TextDatasetError, match="does not exist"):
        load_text_records(session, ShardReader(store), "ds_missing", 1)


def test_image_shards_are_still_blanked_beside_text_ones(
    session: Session, store: LocalStore
) -> None:
    """The purge picks the shard format by key: image shards keep their .npz rewrite."""
    images = np.full((4, 2, 2, 1), 200, dtype=np.uint8)
    records = [
        SampleRecord(sample_id=f"i{n}", label=0, subject_id=f"p{n % 2}", caption="c", split="train")
        for n in range(4)
    ]
    data = DatasetImport(name="img", images=images, records=records, label_names=["a"], source="t")
    dataset = service.ingest(session, store, data, "img", "", None)
    session.commit()
    (old_key,) = _shard_keys(store, dataset.id)
    delete_samples(session, store, "subject_ids", ["p1"], "dr_img", commit=lambda v: "x" + v)
    session.commit()
    (new_key,) = _shard_keys(store, dataset.id)
    assert new_key != old_key and new_key.endswith(".npz")
    pixels = decode_shard(store.get_bytes(new_key))
    assert (pixels[[1, 3]] == 0).all() and (pixels[[0, 2]] == 200).all()
