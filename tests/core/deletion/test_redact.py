"""Redaction on the embedded default (SQLite): ids become commitments as whole words only,
a sample request's ids go from every copy (SQLite's JSON escapes non-ASCII: still found),
and the sweeper redacts a rejected request only once its retention period has passed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core import migrate
from core.audit.events import commit_subject, subject_salt
from core.audit.log import append as audit
from core.db import make_engine
from core.deletion.redact import Redactor, redact_due, redact_request
from core.settings import Settings
from models import Dataset, DeletionRequest, Job, Model, ModelVersion, Sample
from models.base import utcnow
from models.deletion import DeletionComment, DeletionItem
from models.idempotency import IdempotencyRecord
from models.jobs import JobEvent
from models.webhooks import Webhook, WebhookDelivery

NAMED = "bild-ü-7"  # non-ASCII: SQLite's JSON stores it as bild-\u00fc-7


def test_ids_are_replaced_as_whole_words_only() -> None:
    redactor = Redactor({"s1": "C1", "a.b@x.org": "C2"})
    assert redactor.text("s1") == "C1"
    text = "s1 and s10, xs1, s1-2, s1. (a.b@x.org)"
    assert redactor.text(text) == "C1 and s10, xs1, s1-2, C1. (C2)"
    assert redactor.value({"s1": ["s1", "s10", 3, None], "k": {"m": "forgetting s1"}}) == {
        "C1": ["C1", "s10", 3, None],
        "k": {"m": "forgetting C1"},
    }


def _settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'r.db'}")
    migrate.upgrade(settings)
    return settings


def _request(session: Session, rid: str, kind: str, values: list[str], status: str) -> None:
    now = utcnow()
    session.add(
        DeletionRequest(
            id=rid,
            status=status,
            scope={kind: values},
            scope_kind=kind,
            legal_basis="other",
            received_at=now,
            due_at=now + timedelta(days=30),
        )
    )
    session.flush()


def test_a_sample_request_leaves_no_copy_of_its_ids(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    commitment = commit_subject(NAMED, subject_salt(settings))
    with Session(make_engine(settings.database_url)) as session:
        _request(session, "dr_s", "sample_ids", [NAMED, "other-1"], "completed")
        session.add(Dataset(id="ds", name="ds", source="upload", image_shape=[1, 1, 1]))
        session.add(Model(id="m1", name="m1", family="classifier", architecture={}))
        session.flush()
        session.add(
            ModelVersion(
                id="mv",
                model_id="m1",
                version=1,
                status="active",
                source="train",
                checkpoint_key="models/m1/mv/model.safetensors",
                config_key="models/m1/mv/config.json",
                sha256="0" * 64,
                size_bytes=1,
                config={},
            )
        )
        session.add(
            Sample(
                dataset_id="ds",
                sample_id=NAMED,
                shard_key="k",
                shard_index=0,
                position=0,
                removed_in_version=2,
            )
        )
        spec = {"forget": {"sample_ids": [NAMED, "other-1"]}, "deletion_request_id": "dr_s"}
        session.add(Job(id="job_s", kind="unlearn", state="succeeded", spec=spec))
        session.add(Job(id="job_u", kind="evaluate", state="failed", error=f"no sample {NAMED}"))
        session.add(Job(id="job_x", kind="train", state="succeeded", spec={"note": "bild-ü-70"}))
        session.flush()
        session.add(JobEvent(job_id="job_s", type="log", data={"message": f"forgetting {NAMED}"}))
        session.add(
            DeletionItem(
                id="it_s",
                request_id="dr_s",
                model_version_id="mv",
                method="finetune",
                job_id="job_s",
                history=[{"event": "started", "job_id": "job_s", "why": NAMED}],
            )
        )
        session.add(DeletionComment(id="c1", request_id="dr_s", author="k", text=f"{NAMED}!"))
        session.add(
            IdempotencyRecord(
                principal="p",
                key="k1",
                request_hash="0" * 64,
                status_code=201,
                response_body={"scope": {"sample_ids": [NAMED]}},
            )
        )
        session.add(Webhook(id="wh", url="http://x", secret_encrypted="s"))
        session.flush()
        session.add(WebhookDelivery(id="wd", webhook_id="wh", event="e", payload={"x": NAMED}))
        session.flush()

        request = session.get(DeletionRequest, "dr_s")
        assert redact_request(session, settings, request) > 0
        session.commit()
        assert redact_request(session, settings, request) == 0  # done once

        engine = session.get_bind()
        with engine.connect() as conn:
            tables = ("deletion_requests", "deletion_items", "deletion_comments", "jobs",
                      "job_events", "idempotency_records", "webhook_deliveries", "samples")
            dump = "\n".join(
                " ".join(str(v) for v in row)
                for t in tables
                for row in conn.exec_driver_sql(f"select * from {t}")
            )
        escaped = json.dumps(NAMED)[1:-1]  # as SQLite's JSON holds it
        assert escaped != NAMED
        assert NAMED not in dump.replace("bild-ü-70", "")
        assert escaped not in dump.replace(json.dumps("bild-ü-70")[1:-1], "")
        assert request.scope == {"sample_ids": [], "redacted": True, "count": 2}
        assert commitment in request.scope_commitments and len(request.scope_commitments) == 2
        assert session.get(Job, "job_s").spec["forget"]["sample_ids"][0] == commitment
        assert session.get(Job, "job_u").error == f"no sample {commitment}"
        assert session.get(Job, "job_x").spec == {"note": "bild-ü-70"}  # another id: untouched
        assert session.scalar(select(Sample.sample_id)) == commitment
        assert session.get(DeletionComment, "c1").text == f"{commitment}!"
        record = session.get(IdempotencyRecord, ("p", "k1"))
        assert record.response_body == {"scope": {"sample_ids": [commitment]}}
        assert record.request_hash != "0" * 64  # salted: no longer a digest of the body


def test_a_rejected_request_is_redacted_after_its_retention_period(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    factory = sessionmaker(make_engine(settings.database_url))
    with factory() as session:
        _request(session, "dr_r", "subject_ids", ["person-9"], "rejected")
        _request(session, "dr_o", "subject_ids", ["person-8"], "awaiting_approval")
        audit(session, "k", "deletion_request.rejected", "deletion_request", "dr_r", {})
        session.commit()
    assert redact_due(factory, settings) == []  # 30 days by default
    keep_for_a_second = settings.model_copy(update={"closed_request_retention_seconds": 0})
    assert redact_due(factory, keep_for_a_second) == ["dr_r"]
    assert redact_due(factory, keep_for_a_second) == []
    with factory() as session:
        assert session.get(DeletionRequest, "dr_r").scope["redacted"]
        assert session.get(DeletionRequest, "dr_o").scope == {"subject_ids": ["person-8"]}


def test_an_id_another_open_request_needs_stays_in_its_runs_until_that_one_closes(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    with Session(make_engine(settings.database_url)) as session:
        _request(session, "dr_done", "subject_ids", ["twice-filed"], "completed")
        _request(session, "dr_open", "subject_ids", ["twice-filed"], "unlearning")
        spec = {"forget": {"subject_ids": ["twice-filed"]}, "deletion_request_id": "dr_open"}
        session.add(Job(id="job_open", kind="unlearn", state="queued", spec=spec))
        session.flush()
        redact_request(session, settings, session.get(DeletionRequest, "dr_done"))
        assert session.get(DeletionRequest, "dr_done").scope["redacted"]
        assert session.get(Job, "job_open").spec == spec  # dr_open's run still needs it
        later = session.get(DeletionRequest, "dr_open")
        later.status = "completed"
        redact_request(session, settings, later)
        commitment = commit_subject("twice-filed", subject_salt(settings))
        assert session.get(Job, "job_open").spec["forget"]["subject_ids"] == [commitment]
