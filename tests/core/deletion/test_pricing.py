"""The plan prices each approximate attempt against the exact path: its estimated cost
(the method's budget against the original recipe) must stay under the policy's
``max_cost_fraction``, and attempt + p_fail x retrain under a retrain, where p_fail comes
from the model's (or its family's) past verdicts for that method."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from core import migrate
from core.db import make_engine
from core.deletion import flows
from core.deletion.pricing import attempts
from core.lineage import encode_mask
from core.settings import Settings
from models import (
    Dataset,
    DatasetVersion,
    DeletionItem,
    DeletionRequest,
    Model,
    ModelVersion,
    Sample,
)
from models.base import utcnow

N = 100  # 10 samples belong to alice: the forget set
EPOCHS = 4


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate.upgrade(Settings(home=tmp_path, database_url=url))
    with Session(make_engine(url)) as s:
        s.add(Dataset(id="ds1", name="d", source="s", image_shape=[1, 1, 1]))
        s.add(
            DatasetVersion(
                id="dsv1", dataset_id="ds1", version=1, content_hash="0", num_samples=N
            )
        )
        s.add_all(
            Sample(
                dataset_id="ds1",
                sample_id=f"s{p}",
                subject_id="alice" if p < 10 else f"x{p}",
                label=p % 2,
                shard_key="k",
                shard_index=p,
                position=p,
            )
            for p in range(N)
        )
        s.flush()
        yield s


def _model(session: Session, mid: str, policy: dict[str, Any] | None = None) -> None:
    session.add(
        Model(id=mid, name=mid, family="classifier", architecture={}, deletion_policy=policy)
    )
    session.flush()
    session.add(
        ModelVersion(
            id=f"{mid}_v1",
            model_id=mid,
            version=1,
            status="tainted",
            source="train",
            checkpoint_key=f"models/{mid}/v1/model.safetensors",
            config_key=f"models/{mid}/v1/config.json",
            sha256="0" * 64,
            size_bytes=1,
            dataset_version_id="dsv1",
            training_mask=encode_mask(list(range(N)), N),
            config={"train_params": {"epochs": EPOCHS, "batch_size": 32}},
        )
    )
    session.flush()


def _request(session: Session, rid: str = "dr_new") -> DeletionRequest:
    now = utcnow()
    request = DeletionRequest(
        id=rid,
        status="scoped",
        scope={"subject_ids": ["alice"]},
        scope_kind="subject_ids",
        legal_basis="other",
        received_at=now,
        due_at=now + timedelta(days=30),
    )
    session.add(request)
    session.flush()
    return request


def _past(session: Session, mid: str, method: str, outcomes: list[bool]) -> None:
    """Seed finished items on a model: one run of ``method`` each, passed or not."""
    for i, passed in enumerate(outcomes):
        rid = f"dr_{mid}_{method}_{i}"
        _request(session, rid)
        started = {"at": "2026-01-01T00:00:00", "event": "started", "method": method}
        history = [started]
        if not passed:
            history += [
                {"at": "2026-01-01T00:01:00", "event": "fallback", "method": "retrain"},
                {"at": "2026-01-01T00:02:00", "event": "started", "method": "retrain"},
            ]
        verdict = {"passed": True, "exact": not passed, "method": method if passed else "retrain"}
        session.add(
            DeletionItem(
                id=f"it_{rid}",
                request_id=rid,
                model_version_id=f"{mid}_v1",
                state="done",
                method=method if passed else "retrain",
                exact=not passed,
                attempt=1 if passed else 2,
                verdict=verdict,
                history=history,
            )
        )
    session.flush()


def test_the_plan_shows_the_estimate_against_the_retrain(session: Session) -> None:
    _model(session, "m1")
    entry = flows._plan_item(session, _request(session), "m1_v1", False)
    assert (entry["method"], entry["exact"]) == ("finetune", False)
    cost = entry["cost"]
    # Default finetune: 0.2 of the original's 4 x 100 passes buys 80 of the 90 retain.
    assert cost["retrain_passes"] == EPOCHS * 90
    assert cost["estimated_passes"] == 80
    assert cost["estimate_fraction"] == pytest.approx(80 / 360, abs=1e-4)
    assert cost["estimate_fraction"] <= cost["max_cost_fraction"] == 0.5
    # No history: p_fail is the uninformed 0.5 and the attempt still pays.
    assert (cost["verdicts"], cost["p_fail"], cost["choice"]) == (0, 0.5, "attempt")
    assert cost["expected_fraction"] == pytest.approx(80 / 360 + 0.5, abs=1e-4)


def test_max_cost_fraction_sends_a_dear_method_to_the_exact_path(session: Session) -> None:
    # Five explicit epochs over the retain set: 5/4 of a retrain.
    _model(session, "m1", {"method_params": {"epochs": 5}})
    entry = flows._plan_item(session, _request(session), "m1_v1", False)
    assert (entry["method"], entry["exact"], entry["fallback"]) == ("retrain", True, None)
    assert entry["cost"]["choice"] == "exact"
    assert entry["cost"]["estimate_fraction"] == pytest.approx(1.25)
    assert "max_cost_fraction" in entry["note"]
    # Allowed by the policy, it still costs more than it can save (1.25 + p_fail 0.5).
    allowed = {"method_params": {"epochs": 5}, "max_cost_fraction": 2}
    session.get(Model, "m1").deletion_policy = allowed
    entry = flows._plan_item(session, _request(session, "dr_2"), "m1_v1", False)
    assert entry["method"] == "retrain" and "p_fail" in entry["note"]
    # With neither check, the policy's method runs.
    session.get(Model, "m1").deletion_policy = {**allowed, "price_failures": False}
    entry = flows._plan_item(session, _request(session, "dr_3"), "m1_v1", False)
    assert (entry["method"], entry["exact"]) == ("finetune", False)


def test_a_history_of_failures_makes_the_attempt_not_worth_it(session: Session) -> None:
    _model(session, "m1")
    _past(session, "m1", "finetune", [False, False, False, False])
    entry = flows._plan_item(session, _request(session), "m1_v1", False)
    cost = entry["cost"]
    assert (cost["verdicts"], cost["failures"], cost["history"]) == (4, 4, "model")
    assert cost["p_fail"] == pytest.approx(5 / 6, abs=1e-4)  # (4 + 1) / (4 + 2)
    assert cost["expected_fraction"] >= 1.0
    assert (entry["method"], entry["exact"], cost["choice"]) == ("retrain", True, "exact")
    assert "p_fail" in entry["note"]


def test_a_history_of_passes_keeps_the_attempt(session: Session) -> None:
    _model(session, "m1")
    _past(session, "m1", "finetune", [True, True, True, False])
    cost = flows._plan_item(session, _request(session), "m1_v1", False)["cost"]
    assert (cost["verdicts"], cost["failures"]) == (4, 1)
    assert cost["p_fail"] == pytest.approx(2 / 6, abs=1e-4)
    assert cost["choice"] == "attempt"


def test_a_new_model_borrows_its_familys_verdicts(session: Session) -> None:
    _model(session, "old")
    _past(session, "old", "finetune", [False] * 6)
    _past(session, "old", "salun", [True] * 6)  # another method's verdicts do not count
    _model(session, "new")
    cost = flows._plan_item(session, _request(session), "new_v1", False)["cost"]
    assert (cost["verdicts"], cost["failures"], cost["history"]) == (6, 6, "family")
    assert cost["choice"] == "exact"
    # A model of the family on another dataset has no history to borrow.
    session.add(
        DatasetVersion(id="dsv2", dataset_id="ds2", version=1, content_hash="1", num_samples=N)
    )
    session.add(Dataset(id="ds2", name="d2", source="s", image_shape=[1, 1, 1]))
    session.flush()
    session.add_all(
        Sample(
            dataset_id="ds2",
            sample_id=f"t{p}",
            subject_id="alice" if p < 10 else f"y{p}",
            label=p % 2,
            shard_key="k",
            shard_index=p,
            position=p,
        )
        for p in range(N)
    )
    _model(session, "elsewhere")
    session.get(ModelVersion, "elsewhere_v1").dataset_version_id = "dsv2"
    session.flush()
    cost = flows._plan_item(session, _request(session, "dr_3"), "elsewhere_v1", False)["cost"]
    assert (cost["verdicts"], cost["choice"]) == (0, "attempt")
    # Pricing can be turned off: the policy's method runs whatever its record.
    session.get(Model, "new").deletion_policy = {"price_failures": False}
    entry = flows._plan_item(session, _request(session, "dr_2"), "new_v1", False)
    assert (entry["method"], entry["cost"]["choice"]) == ("finetune", "attempt")


def test_attempts_read_runs_from_an_items_history() -> None:
    item = DeletionItem(
        state="done",
        history=[
            {"event": "started", "method": "finetune"},
            {"event": "fallback", "method": "retrain"},
            {"event": "started", "method": "retrain"},
        ],
        verdict={"passed": True, "method": "retrain"},
    )
    assert attempts(item) == [("finetune", False), ("retrain", True)]
