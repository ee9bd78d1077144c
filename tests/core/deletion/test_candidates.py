"""A rejected candidate is purged at once, and another open request that counted it among
its parent's descendants drops its item on it instead of unlearning a purged version."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion import flows, service
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
    number = len(session.scalars(select(ModelVersion.id)).all()) + 1
    session.add(
        ModelVersion(
            id=vid,
            model_id="m1",
            version=number,
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


def test_release_keeps_what_a_failed_request_or_a_candidate_holds(tmp_path: Path) -> None:
    """Cancelling one request must not unblock a version that a failed request still
    holds, nor another request's unverified candidate that it had counted."""
    url = f"sqlite:///{tmp_path / 'flows.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    with Session(make_engine(url)) as session:
        session.add(Model(id="m1", name="m1", family="classifier", architecture={}))
        session.flush()
        for vid in ("v_failed", "v_free", "orig"):
            _version(session, vid, "tainted")
            session.flush()
        _version(session, "cand", "tainted", parent="orig")
        session.add(Job(id="job_a", kind="unlearn", state="succeeded", result_version_id="cand"))
        session.flush()
        session.get(ModelVersion, "cand").job_id = "job_a"
        _request(session, "dr_failed", "failed")
        _request(session, "dr_running", "verifying")
        leaving = _request(session, "dr_leaving", "awaiting_approval")
        leaving.plan = [{"model_version_id": v} for v in ("v_failed", "v_free", "cand")]
        session.flush()
        session.add_all(
            [
                DeletionItem(
                    id="it_f", request_id="dr_failed", model_version_id="v_failed", method="x"
                ),
                DeletionItem(
                    id="it_r",
                    request_id="dr_running",
                    model_version_id="orig",
                    method="finetune",
                    job_id="job_a",
                ),
            ]
        )
        session.flush()

        service.cancel(session, leaving, "key_dpo")
        session.flush()
        status = {v: session.get(ModelVersion, v).status for v in ("v_failed", "v_free", "cand")}
        assert status == {"v_failed": "tainted", "v_free": "active", "cand": "tainted"}
