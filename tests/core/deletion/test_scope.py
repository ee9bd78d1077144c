"""Scoping through the mask block index gives exactly what the whole masks say, on SQLite
(bits tested in Python) and PostgreSQL (tested in SQL), with masks spanning many blocks,
a dataset that grew after training, descendants, exact children and the labels scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion.scope import resolve
from core.lineage import decode_mask, encode_mask
from core.settings import Settings
from models import Dataset, DatasetVersion, Model, ModelVersion, Sample, VersionMaskBlock
from models.lineage import BLOCK_BITS
from tests.services import postgres_database

N = 3 * BLOCK_BITS + 100  # four blocks, the last one short


def _version(session: Session, vid: str, mask: bytes | None, parent: str | None = None, **kw):
    number = session.scalar(select(func.count()).select_from(ModelVersion)) + 1
    session.add(
        ModelVersion(
            id=vid,
            model_id=kw.pop("model_id", "m1"),
            version=number,
            status=kw.pop("status", "active"),
            source="train",
            checkpoint_key=f"models/{vid}/model.safetensors",
            config_key=f"models/{vid}/config.json",
            sha256="0" * 64,
            size_bytes=1,
            parent_version_id=parent,
            dataset_version_id="dsv1",
            training_mask=mask,
            config=kw.pop("config", {}),
        )
    )
    session.flush()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scope.db'}"
    else:
        with postgres_database() as pg:
            yield pg


def test_block_index_matches_whole_masks(url: str, tmp_path: Path) -> None:
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    engine = make_engine(url)
    rng = np.random.default_rng(0)
    subject_positions = [5, BLOCK_BITS + 7, 3 * BLOCK_BITS + 50]  # blocks 0, 1 and 3
    with Session(engine) as session:
        session.add(Dataset(id="ds1", name="d", source="s", image_shape=[1, 1, 1]))
        session.add(
            DatasetVersion(id="dsv1", dataset_id="ds1", version=1, content_hash="0", num_samples=N)
        )
        session.add_all(
            Sample(
                dataset_id="ds1",
                sample_id=f"s{p}",
                subject_id="alice" if p in subject_positions else f"x{p % 97}",
                label=1 if p % 10 == 0 else 0,
                shard_key="k",
                shard_index=p,
                position=p,
            )
            for p in range(N)
        )
        session.add_all(
            [
                Model(id="m1", name="m1", family="classifier", architecture={"num_classes": 2}),
                Model(id="m2", name="m2", family="classifier", architecture={"num_classes": 2}),
            ]
        )
        session.flush()
        others = np.setdiff1d(np.arange(N), subject_positions)
        _version(session, "hit_all", encode_mask(np.arange(N), N))
        _version(session, "hit_last", encode_mask([*others[:500], subject_positions[2]], N))
        _version(session, "miss", encode_mask(rng.choice(others, 2000, replace=False), N))
        # Trained before the dataset grew: its mask is shorter than the subject's position.
        _version(session, "short", encode_mask(np.arange(BLOCK_BITS), BLOCK_BITS))
        _version(session, "child", encode_mask(others[:10], N), parent="miss")
        _version(session, "grandchild", encode_mask(others[:10], N), parent="hit_last")
        _version(
            session,
            "exact",
            encode_mask(others, N),
            parent="hit_all",
            config={"unlearning": {"exact": True}},
        )
        _version(session, "purged", encode_mask(np.arange(N), N), status="purged")
        _version(session, "uploaded", None)
        _version(session, "other_model", encode_mask(np.arange(N), N), model_id="m2")
        session.commit()

        # The hook stored only non-empty blocks; the "miss" mask has no zero block.
        assert session.scalar(
            select(func.count()).where(VersionMaskBlock.version_id == "hit_last")
        ) == len({p // BLOCK_BITS for p in [*others[:500], subject_positions[2]]})

        radius = resolve(session, "subject_ids", ["alice"])
        assert sorted(radius.direct) == ["hit_all", "hit_last", "other_model", "short"]
        assert radius.descendants == ["grandchild"]
        assert radius.unverifiable == ["uploaded"]
        assert sorted(radius.samples["ds1"]) == subject_positions
        # The same answer as the whole masks give.
        live = session.execute(
            select(ModelVersion.id, ModelVersion.training_mask).where(
                ModelVersion.status == "active", ModelVersion.training_mask.is_not(None)
            )
        ).all()
        brute = sorted(
            vid
            for vid, blob in live
            if any(p < len(m := decode_mask(blob)) and m[p] for p in subject_positions)
        )
        assert brute == sorted(radius.direct)

        labels = resolve(session, "labels", [1], model_id="m1")
        assert "other_model" not in labels.direct and "hit_all" in labels.direct
        assert "short" in labels.direct  # position 0 has label 1
    engine.dispose()
