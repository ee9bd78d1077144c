"""A rejected candidate is purged at once, and another open request that counted it among
its parent's descendants drops its item on it instead of unlearning a purged version."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion import flows
from core.settings import Settings
from core.storage import LocalStore
from models import (
    DeletionItem,
    DeletionRequest,
    Job,
    Model,
    ModelVersion,
)
from models.base import utcnow


def _version(session: Session, vid: str, status: str, parent: str | None = None) -> None:
    session.add(
        ModelVersion(
            id=vid,
            model_id="m1",
            version=1 if parent is None else 2,
            status=status,
            source="train" if parent is None else "unlearn",
            checkpoint_key=f"models/m1/jobs/{vid}/model.safetensors",
            config_key=f"models/m1/jobs/{vid}/config.json",
            sha256="0" * 64,
            size_bytes=1,
            parent_version_id=parent,
            config={},
        )
    )


def _request(session: Session, rid: str, status: str) -> DeletionRequest:
    now = utcnow()
    request = DeletionRequest(
        id=rid,
        status=status,
        scope={"subject_ids": [rid]},
        scope_kind="subject_ids",
        legal_basis="other",
        received_at=now,
        due_at=now + timedelta(days=30),
    )
    session.add(request)
    return request


def test_rejected_candidate_is_purged_and_dropped_from_other_requests(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flows.db'}"
    settings = Settings(home=tmp_path, database_url=url)
    migrate.upgrade(settings)
    store = LocalStore(tmp_path / "objects")
    store.put_bytes("models/m1/jobs/cand/model.safetensors", b"weights")
    with Session(make_engine(url)) as session:
        session.add(Model(id="m1", name="m1", family="classifier", architecture={}))
        session.flush()
        _version(session, "orig", "tainted")
        session.flush()
        _version(session, "cand", "tainted", parent="orig")
        first = _request(session, "dr_a", "verifying")
        later = _request(session, "dr_b", "unlearning")
        session.add(Job(id="job_a", kind="unlearn", state="succeeded", result_version_id="cand"))
        session.flush()
        mine = DeletionItem(
            id="it_a", request_id="dr_a", model_version_id="orig", method="finetune", job_id="job_a"
        )
        theirs = DeletionItem(
            id="it_b", request_id="dr_b", model_version_id="cand", method="finetune", history=[]
        )
        session.add_all([mine, theirs])
        session.flush()

        flows._discard_candidate(session, store, first, mine, session.get(Job, "job_a"))
        session.commit()

        assert session.get(ModelVersion, "cand").status == "purged"
        assert session.get(ModelVersion, "orig").status == "tainted"  # a person decides
        assert not list(store.list("models/m1/jobs/cand/"))
        dropped = session.get(DeletionItem, "it_b")
        assert (dropped.state, dropped.method, dropped.exact) == ("done", "retire", True)
        assert later.status == "unlearning"
        # Discarding twice (the worker and the sweeper both advancing) changes nothing.
        flows._discard_candidate(session, store, first, mine, session.get(Job, "job_a"))
