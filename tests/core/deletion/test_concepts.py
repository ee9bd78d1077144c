"""A concept names one model's labels: by number, several numbers, a label name, or a
factor (a style, an object) of the objects × styles set."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core import migrate
from core.datasets.builtin import FASHION_MNIST_LABELS, FASHION_STYLES, FASHION_STYLES_SOURCE
from core.db import make_engine
from core.deletion.concepts import known_names, resolve_concept
from core.errors import Unprocessable
from core.settings import Settings
from models import Dataset, DatasetVersion, Model, ModelVersion

STYLE_NAMES = [f"{o}, {s}" for o in FASHION_MNIST_LABELS for s in FASHION_STYLES]


def test_factor_and_label_names_of_the_styles_set() -> None:
    names = known_names(Dataset(source=FASHION_STYLES_SOURCE, label_names=STYLE_NAMES))
    striped = FASHION_STYLES.index("striped")
    assert names["striped"] == [o * len(FASHION_STYLES) + striped for o in range(10)]
    sneaker = FASHION_MNIST_LABELS.index("Sneaker")
    assert names["sneaker"] == [sneaker * 6 + s for s in range(6)]
    assert names["sneaker, striped"] == [sneaker * 6 + striped]
    # Another dataset's labels are only their own names: no factors.
    plain = known_names(Dataset(source="upload", label_names=["cat", "dog"]))
    assert plain == {"cat": [0], "dog": [1]}


@pytest.fixture
def session(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'concepts.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    with Session(make_engine(url)) as session:
        session.add(
            Dataset(
                id="ds1",
                name="styles",
                source=FASHION_STYLES_SOURCE,
                image_shape=[1, 28, 28],
                label_names=STYLE_NAMES,
            )
        )
        session.add(
            DatasetVersion(id="dsv1", dataset_id="ds1", version=1, content_hash="0", num_samples=1)
        )
        session.add_all(
            [
                Model(
                    id="m1", name="painter", family="text2image", architecture={"num_classes": 60}
                ),
                Model(id="m2", name="upload", family="classifier", architecture={"num_classes": 4}),
                Model(id="m3", name="sd", family="stable_diffusion", architecture={}),
            ]
        )
        session.flush()
        session.add(
            ModelVersion(
                id="mv1",
                model_id="m1",
                version=1,
                status="active",
                source="train",
                checkpoint_key="models/mv1/model.safetensors",
                config_key="models/mv1/config.json",
                sha256="0" * 64,
                size_bytes=1,
                dataset_version_id="dsv1",
                config={},
            )
        )
        session.flush()
        yield session


def test_resolve_by_number_numbers_and_name(session: Session) -> None:
    painter, upload = session.get(Model, "m1"), session.get(Model, "m2")
    assert resolve_concept(session, painter, label=7).labels == [7]
    assert resolve_concept(session, painter, labels=[9, 3, 9]).labels == [3, 9]
    striped = resolve_concept(session, painter, name="  Striped ")
    assert len(striped.labels) == 10 and striped.name == "Striped"

    with pytest.raises(Unprocessable, match="60 classes.*60, 61 are not") as bad:
        resolve_concept(session, painter, labels=[1, 60, 61])
    assert bad.value.field == "scope.concept.labels"
    with pytest.raises(Unprocessable, match="'plaid' is not a concept.*known names: .*ankle boot"):
        resolve_concept(session, painter, name="plaid")
    # A model with no lineage (an upload) has no label names to look a name up in.
    with pytest.raises(Unprocessable, match="no training dataset with label names"):
        resolve_concept(session, upload, name="cat")
    with pytest.raises(Unprocessable, match="Stable Diffusion pipeline.*unlearn job") as sd:
        resolve_concept(session, session.get(Model, "m3"), label=0)
    assert sd.value.field == "scope.concept.model_id"
