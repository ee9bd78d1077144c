"""Where a version's shadow models are: its own bank, or that of the version it was
unlearned from (recursively), never that of a version it was merely fine-tuned from; and
deleted samples leave every bank."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion.shadows import (
    find_shadows,
    forget_in_banks,
    shadow_key,
    shadow_plan,
    uses_shadows,
)
from core.settings import Settings
from core.storage import LocalStore
from models import Model, ModelVersion


def _version(session: Session, vid: str, parent: str | None, source: str, metrics: dict) -> None:
    number = session.query(ModelVersion).count() + 1
    session.add(
        ModelVersion(
            id=vid,
            model_id="m1",
            version=int(number),
            status="active",
            source=source,
            checkpoint_key=f"models/m1/{vid}/model.safetensors",
            config_key=f"models/m1/{vid}/config.json",
            sha256="0" * 64,
            size_bytes=1,
            parent_version_id=parent,
            config={},
            metrics=metrics,
        )
    )
    session.flush()


def test_lineage_lookup_and_plan(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shadows.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    bank = {"k": 4, "key": shadow_key("v", 4), "seconds": 12.0, "uses": 3}
    with Session(make_engine(url)) as session:
        session.add(Model(id="m1", name="m1", family="classifier", architecture={}))
        session.flush()
        _version(session, "v", None, "train", {"shadow_models": bank})
        _version(session, "vu", "v", "unlearn", {})
        _version(session, "vuu", "vu", "unlearn", {})
        _version(session, "vt", "v", "train", {})  # fine-tuned: another recipe, another bank
        get = session.get
        assert find_shadows(session, get(ModelVersion, "vuu"), 4)["version_id"] == "v"
        assert find_shadows(session, get(ModelVersion, "vuu"), 8) is None  # too few shadows
        assert find_shadows(session, get(ModelVersion, "vt"), 4) is None

        reused = shadow_plan(session, get(ModelVersion, "vu"), 4, 10.0, True)
        assert reused == {
            "k": 4,
            "exists": True,
            "from_version_id": "v",
            "one_off_seconds": 0.0,
            "paid_seconds": 12.0,
            "runs_served": 3,
        }
        fresh = shadow_plan(session, get(ModelVersion, "vt"), 6, 10.0, True)
        assert fresh is not None and fresh["exists"] is False
        assert fresh["one_off_seconds"] == 30.0  # 6 shadows on half the data: 3 trainings
        assert shadow_plan(session, get(ModelVersion, "vt"), 0, 10.0, True) is None
        assert shadow_plan(session, get(ModelVersion, "vt"), 4, 10.0, False) is None
    assert uses_shadows("classifier", "subject_ids", exact=False)
    assert not uses_shadows("classifier", "labels", exact=False)
    assert not uses_shadows("classifier", "sample_ids", exact=True)
    assert not uses_shadows("ddpm", "sample_ids", exact=False)


def test_deleted_samples_leave_the_bank(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'banks.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    store = LocalStore(tmp_path / "objects")
    key = shadow_key("v", 2)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        format=np.array("expunge.lira_shadows/1"),
        sample_ids=np.array(["a", "b", "c"]),
        confidences=np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32),
        members=np.array([[True, False, True], [False, True, False]]),
        test_ids=np.array(["t1", "b-test"]),
        test_confidences=np.array([[7.0, 8.0], [9.0, 10.0]], np.float32),
    )
    store.put_bytes(key, buffer.getvalue())
    record = {"k": 2, "key": key, "samples": 3, "test_samples": 2}
    with Session(make_engine(url)) as session:
        session.add(Model(id="m1", name="m1", family="classifier", architecture={}))
        session.flush()
        _version(session, "v", None, "train", {"shadow_models": record, "TA": 0.9})
        assert forget_in_banks(session, store, {"zzz"}) == []  # in no bank: untouched
        old = forget_in_banks(session, store, {"b", "b-test"})
        assert old == [key]
        now = session.get(ModelVersion, "v").metrics
    assert now["TA"] == 0.9 and now["shadow_models"]["key"] != key
    assert now["shadow_models"]["forgotten"] == 2 and now["shadow_models"]["samples"] == 2
    with np.load(io.BytesIO(store.get_bytes(now["shadow_models"]["key"]))) as bank:
        assert bank["sample_ids"].tolist() == ["a", "c"] and bank["test_ids"].tolist() == ["t1"]
        np.testing.assert_array_equal(bank["confidences"], [[1.0, 3.0], [4.0, 6.0]])
        np.testing.assert_array_equal(bank["members"], [[True, True], [False, False]])
        np.testing.assert_array_equal(bank["test_confidences"], [[7.0], [9.0]])
