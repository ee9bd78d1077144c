"""A subject request's plan on language-model versions (SQLite, rows only, no jobs).

A causal_lm version's lineage is its base plus its fine-tune's samples: the plan states
the base and whether it can have seen the person, and a fine-tune whose base version is
itself affected is retired (its exact path, re-fine-tuning that base, would start from
the data). A base of unknown lineage (uploaded) is named as such, and the request's
outcome can then only be ``erased_where_known``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion import repository
from core.deletion.flows import advance, approve, erased_outcome, file_request
from core.deletion.policy import DeletionPolicy
from core.lineage import encode_mask
from core.settings import Settings
from core.storage import LocalStore
from models import Dataset, DatasetVersion, Model, ModelVersion, Sample
from models.base import utcnow

N = 40  # samples: alice's are positions 0-3, the rest other people's
ALICE = [0, 1, 2, 3]
WORLD = [34, 35]


@pytest.fixture
def session(tmp_path: Path) -> Any:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'lm.db'}")
    migrate.upgrade(settings)
    with Session(make_engine(settings.database_url)) as s:
        s.info["settings"] = settings
        s.add(Dataset(id="ds", name="people", source="upload", image_shape=[1, 1, 1]))
        s.add(
            DatasetVersion(
                id="dsv",
                dataset_id="ds",
                version=1,
                content_hash="0",
                num_samples=N,
                split_counts={"train": N - 4, "test": 4},
            )
        )
        s.add_all(
            Sample(
                dataset_id="ds",
                sample_id=f"q{p}",
                # The last four: two held-out people (test split); two before: world facts.
                subject_id="alice"
                if p in ALICE
                else (None if p in WORLD else (f"held{p % 2}" if p >= N - 4 else f"p{p // 4}")),
                split="test" if p >= N - 4 else "train",
                shard_key="texts/0.json.gz",
                shard_index=p,
                position=p,
            )
            for p in range(N)
        )
        s.add(Model(id="lm", name="lm", family="causal_lm", architecture={"base": "tiny-llama"}))
        s.flush()
        yield s


def _version(
    s: Session, vid: str, positions: list[int] | None, base: dict[str, Any], parent: str | None
) -> None:
    s.add(
        ModelVersion(
            id=vid,
            model_id="lm",
            version=len(vid),
            status="active",
            source="train" if positions is not None else "upload",
            checkpoint_key=f"models/lm/{vid}.safetensors",
            config_key=f"models/lm/{vid}.json",
            sha256=vid[0] * 64,
            size_bytes=1,
            config={"base": base, "training_set": {"count": len(positions or [])}},
            dataset_version_id="dsv" if positions is not None else None,
            training_mask=encode_mask(positions, N) if positions is not None else None,
            parent_version_id=parent,
        )
    )
    s.flush()


def _file(s: Session, kind: str = "subject_ids", values: list[str] | None = None) -> Any:
    return file_request(
        s,
        scope_kind=kind,
        values=values or ["alice"],
        model_id=None,
        legal_basis="gdpr_art17",
        requester_reference="t",
        received_at=utcnow(),
        actor="key_filer",
        settings=s.info["settings"],
    )


TINY = {"name": "tiny-llama", "version_id": None, "seed": 3}


def test_a_fine_tune_on_an_affected_base_is_retired_and_the_base_unlearned(
    session: Session,
) -> None:
    _version(session, "parent", list(range(N)), TINY, None)
    child = {"name": "tiny-llama", "version_id": "parent", "sha256": "p" * 64}
    _version(session, "child", list(range(N)), child, "parent")
    request = _file(session)
    plan = {p["model_version_id"]: p for p in request.plan}
    assert request.blast_radius["versions"] == ["parent", "child"]
    assert plan["parent"]["method"] == "simnpo" and plan["parent"]["fallback"] == "retrain"
    lineage = plan["parent"]["lineage"]
    assert lineage["base_never_saw_the_data"] is True
    assert "tiny llama initialised from seed 3" in lineage["base_statement"]
    assert lineage["fine_tune"] == {"dataset_id": "ds", "dataset_version": 1, "samples": N}
    # Re-fine-tuning the child would start from the parent, which holds alice: retired.
    assert plan["child"]["method"] == "retire" and plan["child"]["exact"]
    assert "fine-tuned from an affected version" in plan["child"]["note"]
    assert plan["child"]["lineage"]["base_never_saw_the_data"] is False


def test_a_base_version_that_never_saw_the_person_is_cleared_by_its_lineage(
    session: Session,
) -> None:
    others = [p for p in range(N) if p not in ALICE]
    _version(session, "parent", others, TINY, None)
    child = {"name": "tiny-llama", "version_id": "parent", "sha256": "p" * 64}
    _version(session, "child", list(range(N)), child, "parent")
    request = _file(session)
    (item,) = request.plan
    assert item["model_version_id"] == "child" and item["method"] == "simnpo"
    assert item["lineage"]["base_never_saw_the_data"] is True
    assert "by its recorded lineage" in item["lineage"]["base_statement"]
    assert erased_outcome(request) == "erased"


def test_an_uploaded_base_leaves_the_lineage_partly_unknown(session: Session) -> None:
    _version(session, "upload", None, {"name": "uploaded"}, None)
    child = {"name": "uploaded", "version_id": "upload", "sha256": "u" * 64}
    _version(session, "child", list(range(N)), child, "upload")
    request = _file(session)
    (item,) = request.plan
    assert item["model_version_id"] == "child"
    assert item["lineage"]["base_never_saw_the_data"] is None
    assert "nobody can tell" in item["lineage"]["base_statement"]
    # The uploaded base is listed as unknown lineage: the request cannot say "erased".
    assert request.blast_radius["unverifiable_versions"] == ["upload"]
    assert erased_outcome(request) == "erased_where_known"


def test_a_sample_scope_reaches_the_same_versions(session: Session) -> None:
    _version(session, "v1", list(range(N)), {"name": "smollm2-135m", "sha256": "s" * 64}, None)
    request = _file(session, "sample_ids", ["q1", "q2"])
    (item,) = request.plan
    assert request.blast_radius["samples"] == 2 and item["method"] == "simnpo"
    assert (
        "SmolLM2-135M-Instruct as published, sha256 " + "s" * 64
        in (item["lineage"]["base_statement"])
    )


def test_other_families_carry_no_lineage_entry(session: Session) -> None:
    session.add(Model(id="clf", name="clf", family="classifier", architecture={}))
    session.flush()
    session.add(
        ModelVersion(
            id="cv",
            model_id="clf",
            version=1,
            status="active",
            source="train",
            checkpoint_key="k",
            config_key="c",
            sha256="c" * 64,
            size_bytes=1,
            config={},
            dataset_version_id="dsv",
            training_mask=encode_mask(list(range(N)), N),
        )
    )
    session.flush()
    (item,) = _file(session).plan
    assert item["model_version_id"] == "cv" and "lineage" not in item


def test_without_held_out_people_the_plan_goes_straight_to_the_exact_path(
    session: Session,
) -> None:
    dsv = session.get(DatasetVersion, "dsv")
    dsv.split_counts = {"train": N}  # no test split: the verdict has nobody to compare with
    session.flush()
    _version(session, "v1", list(range(N)), TINY, None)
    (item,) = _file(session).plan
    assert item["method"] == "retrain" and item["exact"]
    assert "no held-out people (test split)" in item["note"]
    assert "planned straight to the exact re-fine-tune" in item["note"]


def test_a_policy_that_chose_the_exact_path_gets_no_such_note(session: Session) -> None:
    session.get(Model, "lm").deletion_policy = {"method": "retrain"}
    session.get(DatasetVersion, "dsv").split_counts = {"train": N}
    session.flush()
    _version(session, "v1", list(range(N)), TINY, None)
    (item,) = _file(session).plan
    assert item["method"] == "retrain" and item["note"] is None


def test_the_runs_carry_the_lm_keys_and_a_skipped_attempt_falls_back_reusing_it(
    session: Session, tmp_path: Path
) -> None:
    """Approved: the approximate run carries the policy's evaluation cap and its
    thresholds as a precheck. The worker found the original indistinguishable and skipped
    the method: the verdict says so, and the exact fallback names that run as the source
    of the original's evaluation (the worker reuses it instead of scoring it again)."""
    session.get(Model, "lm").deletion_policy = {"thresholds": {"lm_eval_items": 25}}
    session.flush()
    _version(session, "v1", list(range(N)), TINY, None)
    request = _file(session)
    (job,) = approve(session, request, "key_approver")
    assert job.method == "simnpo" and job.spec["eval_max_items"] == 25
    assert job.spec["precheck"] == DeletionPolicy.for_family(
        "causal_lm", {"thresholds": {"lm_eval_items": 25}}
    ).thresholds.model_dump(mode="json")
    assert "original_evaluation_job_id" not in job.spec
    assert job.spec["calibration"] is True  # the default method stops by held-out people

    reason = "the untouched version is not distinguishable: ..."
    job.state = "succeeded"
    job.metrics = {"method": "simnpo", "skipped": reason, "original_evaluation": {"forget_prob": 1}}
    session.flush()
    store = LocalStore(tmp_path / "objects")
    (fallback,) = advance(session, store, session.info["settings"], request)
    (item,) = repository.items(session, request.id)
    first = item.verdict["attempts"][0]
    assert not first["passed"] and first["reason"] == reason
    assert first["original_evaluation"] == {"forget_prob": 1}
    assert "not distinguishable to begin with" in first["evidence"]
    assert fallback.method == "retrain" and item.exact
    assert fallback.spec["original_evaluation_job_id"] == job.id
    assert "precheck" not in fallback.spec and fallback.spec["eval_max_items"] == 25


def test_a_stop_rule_policy_sets_calibration_people_aside_for_every_run(
    session: Session, tmp_path: Path
) -> None:
    """A policy whose method stops by held-out people (``stop_at_holdout``, the default)
    needs two of them: with one, the plan goes straight to the exact path and says why
    (a method without the rule still runs); with two, the attempt and its exact fallback
    both carry ``calibration`` (judged on the same held-out person)."""
    session.get(Model, "lm").deletion_policy = {"method": "npo"}  # no stop rule
    for sample in session.query(Sample).filter(Sample.split == "test"):
        sample.subject_id = "held"  # one held-out person
    session.flush()
    _version(session, "v1", list(range(N)), TINY, None)
    (item,) = _file(session).plan
    assert item["method"] == "npo" and not item["exact"]  # one stranger to judge against
    session.get(Model, "lm").deletion_policy = None  # the default: SimNPO, stop rule
    session.flush()
    (item,) = _file(session).plan
    assert item["method"] == "retrain" and item["exact"]
    assert "fewer than two held-out people" in item["note"]

    for sample in session.query(Sample).filter(Sample.sample_id.in_(["q38", "q39"])):
        sample.subject_id = "held-2"
    session.flush()
    request = _file(session, values=["alice"])
    (job,) = approve(session, request, "key_approver")
    assert job.method == "simnpo" and job.params["stop_at_holdout"] is True
    assert job.spec["calibration"] is True
    job.state = "succeeded"
    job.metrics = {"method": "simnpo", "skipped": "not distinguishable", "original_evaluation": {}}
    session.flush()
    (fallback,) = advance(
        session, LocalStore(tmp_path / "objects"), session.info["settings"], request
    )
    assert fallback.method == "retrain" and fallback.spec["calibration"] is True
