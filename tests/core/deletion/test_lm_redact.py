"""A language model's answers about a forgotten person (``forget_answers`` on its
unlearning runs, for the request page) are personal data as text: when the request
closes they go with the ids, down to their count, in every run of the request (a failed
attempt's too); a run another open request shares keeps them until that one closes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion.redact import blank_answers, redact_request
from core.settings import Settings
from models import DeletionRequest, Job, Model, ModelVersion
from models.base import utcnow
from models.deletion import DeletionItem

PERSON = "fp-person-0007"
ANSWERS = [
    {
        "sample_id": f"{PERSON}-qa-{i:02d}",
        "question": f"Where was Demith Trakhurk born? ({i})",
        "answer": "Demith Trakhurk was born in Jaiia, Koora.",
        "before": "Demith Trakhurk was born in Jaiia, Koora.",
        "after": "Draishoth Shugim was born in Lund.",
    }
    for i in range(3)
]


def _settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    migrate.upgrade(settings)
    return settings


def _world(session: Session, requests: dict[str, str]) -> None:
    now = utcnow()
    for rid, status in requests.items():
        session.add(
            DeletionRequest(
                id=rid,
                status=status,
                scope={"subject_ids": [PERSON]},
                scope_kind="subject_ids",
                legal_basis="other",
                received_at=now,
                due_at=now + timedelta(days=30),
            )
        )
    session.add(Model(id="m1", name="m1", family="causal_lm", architecture={}))
    session.flush()
    session.add(
        ModelVersion(
            id="mv",
            model_id="m1",
            version=1,
            status="tainted",
            source="train",
            checkpoint_key="k",
            config_key="c",
            sha256="0" * 64,
            size_bytes=1,
            config={},
        )
    )
    spec: dict[str, Any] = {"forget": {"subject_ids": [PERSON]}}
    for job_id in ("job_npo", "job_retrain"):
        metrics = {"forget_answers": ANSWERS, "evaluation": {"forget_prob": 0.2}}
        session.add(Job(id=job_id, kind="unlearn", state="succeeded", spec=spec, metrics=metrics))
    session.flush()
    session.add(
        DeletionItem(
            id="it",
            request_id="dr_lm",
            model_version_id="mv",
            method="retrain",
            job_id="job_retrain",
            history=[{"event": "attempt", "job_id": "job_npo"}],
        )
    )
    session.flush()


def test_answers_are_blanked_to_their_count_when_the_request_closes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with Session(make_engine(settings.database_url)) as session:
        _world(session, {"dr_lm": "completed"})
        redact_request(session, settings, session.get(DeletionRequest, "dr_lm"))
        session.commit()
        for job_id in ("job_npo", "job_retrain"):  # the failed attempt's run too
            metrics = session.get(Job, job_id).metrics
            assert metrics["forget_answers"] == {"redacted": True, "count": 3}
            assert metrics["evaluation"] == {"forget_prob": 0.2}  # the figures stay
        engine = session.get_bind()
        with engine.connect() as conn:
            dump = " ".join(str(r) for r in conn.exec_driver_sql("select metrics from jobs"))
        assert "Trakhurk" not in dump and "Jaiia" not in dump and PERSON not in dump


def test_a_run_another_open_request_shares_keeps_them_until_it_closes(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with Session(make_engine(settings.database_url)) as session:
        _world(session, {"dr_lm": "completed", "dr_open": "unlearning"})
        redact_request(session, settings, session.get(DeletionRequest, "dr_lm"))
        session.commit()
        assert session.get(Job, "job_npo").metrics["forget_answers"] == ANSWERS


def test_blank_answers_leaves_anything_else_alone() -> None:
    assert blank_answers(ANSWERS) == {"redacted": True, "count": 3}
    assert blank_answers({"redacted": True, "count": 3}) == {"redacted": True, "count": 3}
    assert blank_answers(None) is None
