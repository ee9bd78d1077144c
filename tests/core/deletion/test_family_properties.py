"""Deletion code asks the family declaration, not the family's name: the LiRA shadows
where a family's unlearn job trains them, concept requests only where a family has
classes, attempts priced wherever the family's methods declare a cost model (classifier
and causal_lm methods both do; a language model's NPO is priced against its fine-tune)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from contracts import families
from core import migrate
from core.db import make_engine
from core.deletion.concepts import resolve_concept
from core.deletion.policy import DeletionPolicy
from core.deletion.pricing import price
from core.deletion.shadows import uses_shadows
from core.errors import Unprocessable
from core.lineage import encode_mask
from core.settings import Settings
from models import Dataset, DatasetVersion, Model, ModelVersion, Sample

N = 40  # the first 10 records are ada's: the forget set


def test_shadows_follow_the_declaration() -> None:
    with_shadows = {f.name for f in families() if f.membership_shadows}
    assert with_shadows == {"classifier"}
    for family in families():
        expected = family.name in with_shadows
        assert uses_shadows(family.name, "subject_ids", exact=False) is expected
        assert not uses_shadows(family.name, "labels", exact=False)
        assert not uses_shadows(family.name, "sample_ids", exact=True)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    with Session(make_engine(url)) as s:
        s.add(Dataset(id="ds1", name="people", source="s", modality="text", image_shape=[]))
        s.add(
            DatasetVersion(id="dsv1", dataset_id="ds1", version=1, content_hash="0", num_samples=N)
        )
        s.add_all(
            Sample(
                dataset_id="ds1",
                sample_id=f"r{p}",
                subject_id="ada" if p < 10 else f"p{p // 10}",
                label=0,
                shard_key="k",
                shard_index=p,
                position=p,
            )
            for p in range(N)
        )
        s.add(
            Model(
                id="lm", name="people-lm", family="causal_lm", architecture={"base": "tiny-llama"}
            )
        )
        s.flush()
        s.add(
            ModelVersion(
                id="lm_v1",
                model_id="lm",
                version=1,
                status="active",
                source="train",
                checkpoint_key="models/lm/v1/model.safetensors",
                config_key="models/lm/v1/config.json",
                sha256="0" * 64,
                size_bytes=1,
                dataset_version_id="dsv1",
                training_mask=encode_mask(list(range(N)), N),
                config={"train_params": {"epochs": 10}},
            )
        )
        s.flush()
        yield s


def test_a_concept_request_needs_a_family_with_classes(session: Session) -> None:
    lm = session.get(Model, "lm")
    assert lm is not None
    with pytest.raises(Unprocessable, match="no classes.*subject_ids or sample_ids") as refused:
        resolve_concept(session, lm, label=0)
    assert refused.value.field == "scope.concept.model_id"


def test_a_language_model_attempt_is_priced_by_its_declared_cost_model(session: Session) -> None:
    lm, version = session.get(Model, "lm"), session.get(ModelVersion, "lm_v1")
    assert lm is not None and version is not None
    policy = DeletionPolicy.for_family("causal_lm", None)
    priced = price(session, lm, version, policy, "npo", {"epochs": 2}, {"subject_ids": ["ada"]})
    assert priced is not None and priced.choice == "attempt"
    assert priced.epochs == 2 and priced.retrain_passes == 10 * 30
    assert priced.estimate_fraction is not None and 0 < priced.estimate_fraction < 1
    # The exact method is never priced: it is what the attempt is priced against.
    assert price(session, lm, version, policy, "retrain", {}, {"subject_ids": ["ada"]}) is None
