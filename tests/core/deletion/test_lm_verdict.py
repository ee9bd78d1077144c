"""The causal_lm checks on real models: a tiny llama fine-tuned on three fictitious people
and 20 world facts FAILS them (it memorised the people), and the exact re-fine-tune from
the same base without one person PASSES them for that person, with the original's
figures beside its own — so a pass is informative. One thread, about a minute."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import workers.engine  # noqa: F401  (installs the torchvision hook transformers needs)
from contracts.causal_lm import LMTrainParams
from core.datasets import fictitious
from core.deletion.policy import (
    NOT_CERTIFIED,
    NOT_DISTINGUISHABLE,
    Thresholds,
    lm_indistinguishable,
    verify,
)
from tests.support.lm import tiny_pair
from workers.engine.lm.data import TextRecord
from workers.engine.lm.evaluation import EvalSettings, EvalSuite, QAItem, evaluate_lm
from workers.engine.lm.training import finetune

TRAIN = LMTrainParams(epochs=15, lr=3e-3, batch_size=16, max_length=96, checkpoint_every_steps=0)
SETTINGS = EvalSettings(max_length=96, max_new_tokens=16, batch_size=16)


def _item(qa: fictitious.QAPair) -> QAItem:
    record = TextRecord(
        sample_id=qa.qa_id, subject_id=qa.subject_id, question=qa.question, answer=qa.answer
    )
    return QAItem(record, qa.paraphrased_answer, tuple(qa.perturbed_answers))


@pytest.fixture(scope="module")
def evaluations() -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        world = fictitious.generate_people(seed=0)
        people = world.people[:3]
        trained = [_item(q) for p in people for q in p.qa] + [
            _item(q) for q in world.world_facts[:20]
        ]
        person = people[0].person_id
        suite = EvalSuite(
            forget=[i for i in trained if i.record.subject_id == person],
            retain=[i for i in trained if i.record.subject_id not in (None, person)],
            holdout=[_item(q) for p in world.held_out[:2] for q in p.qa],
            world=[i for i in trained if i.record.subject_id is None],
        )
        out = {}
        for name, items in (
            ("original", trained),
            ("retrain", [i for i in trained if i.record.subject_id != person]),
        ):
            model, tokenizer = tiny_pair(seed=3)  # the same base for both, as a retrain
            result = finetune(model, tokenizer, [i.record for i in items], TRAIN)
            out[name] = evaluate_lm(result.model, tokenizer, suite, SETTINGS).metrics
        return out
    finally:
        torch.set_num_threads(threads)


def test_the_untouched_fine_tune_fails(evaluations: dict[str, Any]) -> None:
    original = evaluations["original"]
    verdict = verify(original, original, "subject_ids", Thresholds(), family="causal_lm")
    assert not verdict["passed"] and verdict["level"] == NOT_CERTIFIED
    failed = {c["check"].split(" ")[0] for c in verdict["checks"] if not c["passed"]}
    # It memorised the person: answers far likelier than strangers', attacks see it.
    assert {"forget_prob", "mia_auc"} <= failed, verdict["checks"]
    assert original["forget_prob"] > 2 * original["holdout_prob"]


def test_the_exact_re_fine_tune_passes_informatively(evaluations: dict[str, Any]) -> None:
    original, retrain = evaluations["original"], evaluations["retrain"]
    verdict = verify(retrain, original, "subject_ids", Thresholds(), family="causal_lm")
    assert verdict["passed"], verdict["checks"]
    assert verdict["level"] == NOT_DISTINGUISHABLE
    informative = {c["check"].split(" ")[0] for c in verdict["checks"] if c["informative"]}
    assert {"forget_prob", "mia_auc"} <= informative
    # Every check carries the original's figure on the same check beside the candidate's.
    for c in verdict["checks"]:
        assert c["original_value"] is not None and c["value"] is not None
    assert retrain["forget_prob"] < 1.5 * retrain["holdout_prob"]


def test_the_precheck_runs_on_the_memorised_original_only(evaluations: dict[str, Any]) -> None:
    """The deletion run's precheck lets the method run on the fine-tune that memorised the
    person, and would skip it on the re-fine-tune (which answers them like strangers)."""
    assert lm_indistinguishable(evaluations["original"], Thresholds()) is None
    assert lm_indistinguishable(evaluations["retrain"], Thresholds()) is not None
