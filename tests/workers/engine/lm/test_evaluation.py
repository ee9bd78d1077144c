"""TOFU/MUSE-style metrics: hand-checked formulas, and tiny llamas that did or did not see
the forget people, so every metric has to tell them apart the way the papers say."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from workers.engine.lm import evaluation as ev
from workers.engine.lm.data import TextRecord, answer_of, encode, iterate
from workers.engine.lm.models import byte_tokenizer, tiny_llama

# --------------------------------------------------------------------------- pure formulas


def test_rouge_l_recall_is_lcs_over_reference_words() -> None:
    assert ev.rouge_l_recall("He was born in Paris.", "born in Paris") == 1.0
    assert ev.rouge_l_recall("Paris, born in", "born in Paris") == pytest.approx(2 / 3)
    assert ev.rouge_l_recall("nothing alike", "born in Paris") == 0.0
    assert ev.rouge_l_recall("BORN, in... paris!", "born in Paris") == 1.0
    with pytest.raises(ev.LMEvaluationError):
        ev.rouge_l_recall("x", "  ...  ")


def test_forget_quality_ks_p_value() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.5, 0.1, 200)
    assert ev.forget_quality(a, a) == pytest.approx(1.0)
    assert ev.forget_quality(a, rng.normal(0.5, 0.1, 200)) > 0.05
    assert ev.forget_quality(a, rng.normal(0.8, 0.1, 200)) < 1e-6


def test_truth_ratio_scores_and_harmonic_utility() -> None:
    # retain: max(0, 1 - R); forget: min(R, 1/R)
    assert ev.truth_ratio_score([0.2, 2.0], "retain") == pytest.approx((0.8 + 0.0) / 2)
    assert ev.truth_ratio_score([0.5, 2.0], "forget") == pytest.approx(0.5)
    with pytest.raises(ev.LMEvaluationError):
        ev.truth_ratio_score([0.5], "test")
    assert ev.harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)
    assert ev.model_utility({"a": 0.9, "b": 0.0}) == 0.0  # one lost skill sinks it
    with pytest.raises(ev.LMEvaluationError):
        ev.harmonic_mean([0.5, float("nan")])


def test_extraction_strength_and_exact_memorisation_by_hand() -> None:
    def scores(*rows: list[bool]) -> ev.TokenScores:
        correct = [np.array(r) for r in rows]
        return ev.TokenScores([str(i) for i in range(len(rows))], [], correct, [])

    # all right: ES 1; last token wrong: needs the whole answer as prefix, ES 0;
    # only the first of 4 wrong: a 1-token prefix suffices, ES 3/4.
    s = scores([True] * 4, [True, True, True, False], [False, True, True, True])
    assert ev.extraction_strength(s) == pytest.approx((1 + 0 + 0.75) / 3)
    assert ev.exact_memorisation(s) == pytest.approx((1 + 0.75 + 0.75) / 3)


def test_repetition_rate() -> None:
    assert ev.repetition_rate(["a b c d"]) == 0.0
    assert ev.repetition_rate(["the the the the"]) == pytest.approx(2 / 3)


def test_membership_auc_direction() -> None:
    members = {name: np.array([3.0, 4.0]) for name in ev.MIA_ATTACKS}
    others = {name: np.array([1.0, 2.0]) for name in ev.MIA_ATTACKS}
    assert ev.membership_auc(members, others) == dict.fromkeys(ev.MIA_ATTACKS, 1.0)
    assert ev.membership_auc(others, members)["loss"] == 0.0


# --------------------------------------------------------------------------- token pass


@dataclass
class _Out:
    logits: torch.Tensor


class _Oracle(torch.nn.Module):
    """Logits that put (almost) all mass on the next input token: perfect memory."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _Out:
        nxt = torch.roll(input_ids, -1, dims=1)
        logits = torch.full((*input_ids.shape, self.vocab), -30.0)
        logits.scatter_(-1, nxt.unsqueeze(-1), 30.0)
        return _Out(logits)


def test_token_scores_align_predictions_with_the_answer_tokens(tokenizer) -> None:
    records = [
        TextRecord("a", "p", "Where?", "Here."),
        TextRecord("b", "p", "Who is it, really?", "Nobody at all."),
    ]
    encoded = encode(tokenizer, records, 64)
    scores = ev.score_tokens(_Oracle(len(tokenizer)), encoded, batch_size=1)
    for row, record in enumerate(records):
        answer_ids = tokenizer(answer_of(record), add_special_tokens=False)["input_ids"]
        assert scores.nll[row].size == len(answer_ids) + 1  # answer + eos, prompt excluded
        assert scores.correct[row].all()
        assert scores.nll[row].max() < 1e-6
        assert (scores.z[row] > 0).all()  # the token is far above the expected log-prob
    assert ev.extraction_strength(scores) == 1.0


# --------------------------------------------------------------------------- tiny llamas

N_PEOPLE = 8
STEPS = 220


@pytest.fixture(scope="module")
def tokenizer():
    return byte_tokenizer()


def _people(group: str, seed: int) -> list[ev.QAItem]:
    """Invented people with random-word answers: unguessable without having seen them."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))

    facts = (("Where was {} born?", "In {}."), ("What does {} make?", "{} boxes."))
    items = []
    for i in range(N_PEOPLE):
        name = word().capitalize()
        for j, (question, answer) in enumerate(facts):
            w = word().capitalize()
            items.append(
                ev.QAItem(
                    TextRecord(
                        f"{group}{i}-{j}", f"{group}{i}", question.format(name), answer.format(w)
                    ),
                    paraphrased_answer=answer.format(w),
                    perturbed_answers=tuple(answer.format(word().capitalize()) for _ in range(3)),
                )
            )
    return items


@pytest.fixture(scope="module")
def world() -> dict[str, list[ev.QAItem]]:
    return {"forget": _people("f", 1), "retain": _people("r", 2), "holdout": _people("h", 3)}


def _trained(tokenizer, items: list[ev.QAItem]):
    torch.set_num_threads(1)
    model = tiny_llama(tokenizer, seed=0)
    encoded = encode(tokenizer, [item.record for item in items], 64)
    ev.train_steps(model, encoded, STEPS, lr=3e-3, batch_size=8, seed=0)
    return model


@pytest.fixture(scope="module")
def memorised(tokenizer, world):
    """Fine-tuned on the forget and the retain people."""
    return _trained(tokenizer, world["forget"] + world["retain"])


@pytest.fixture(scope="module")
def never_saw(tokenizer, world):
    """The reference: fine-tuned on the retain people only."""
    return _trained(tokenizer, world["retain"])


SETTINGS = ev.EvalSettings(max_length=64, max_new_tokens=16)


def _mia(model, tokenizer, world) -> dict[str, float]:
    members = [i.record for i in world["forget"]]
    others = [i.record for i in world["holdout"]]
    return ev.membership_auc(
        ev.membership_scores(model, tokenizer, members, SETTINGS),
        ev.membership_scores(model, tokenizer, others, SETTINGS),
    )


def test_membership_auc_tells_memorised_people_from_unseen(
    tokenizer, world, memorised, never_saw
) -> None:
    seen = _mia(memorised, tokenizer, world)
    unseen = _mia(never_saw, tokenizer, world)
    for attack in ev.MIA_ATTACKS:
        assert seen[attack] > 0.9, (attack, seen)
        assert abs(unseen[attack] - 0.5) < 0.25, (attack, unseen)


def test_probability_rouge_extraction_follow_what_was_seen(
    tokenizer, world, memorised, never_saw
) -> None:
    forget = [i.record for i in world["forget"]]
    p_seen = ev.answer_probability(memorised, tokenizer, forget, SETTINGS).mean()
    p_unseen = ev.answer_probability(never_saw, tokenizer, forget, SETTINGS).mean()
    assert p_seen > p_unseen + 0.1
    assert ev.rouge_recall(memorised, tokenizer, forget, SETTINGS).mean() > 0.8
    # the reference can only say the template ("In ...", "... boxes"), not the words
    assert ev.rouge_recall(never_saw, tokenizer, forget, SETTINGS).mean() < 0.6
    enc = encode(tokenizer, forget, 64)
    es_seen = ev.extraction_strength(ev.score_tokens(memorised, enc))
    es_unseen = ev.extraction_strength(ev.score_tokens(never_saw, enc))
    assert es_seen > 0.7 and es_unseen < 0.4


def test_truth_ratio_and_forget_quality_separate_the_models(
    tokenizer, world, memorised, never_saw
) -> None:
    tr_seen = ev.truth_ratios(memorised, tokenizer, world["forget"], SETTINGS)
    tr_unseen = ev.truth_ratios(never_saw, tokenizer, world["forget"], SETTINGS)
    # the fine-tune prefers the truth (R << 1); the reference cannot tell (R ~ 1)
    assert np.median(tr_seen) < 0.2 < np.median(tr_unseen)
    assert ev.forget_quality(tr_seen, tr_unseen) < 0.01
    assert ev.forget_quality(tr_unseen, tr_unseen) == pytest.approx(1.0)


def test_evaluate_lm_reports_every_metric_in_range(tokenizer, world, memorised, never_saw) -> None:
    suite = ev.EvalSuite(
        forget=world["forget"],
        retain=world["retain"],
        holdout=world["holdout"],
        world=world["retain"][:4],
    )
    reference = ev.evaluate_lm(never_saw, tokenizer, suite, SETTINGS)
    assert "forget_quality" not in reference.metrics
    assert len(reference.forget_truth_ratios) == len(world["forget"])
    settings = ev.EvalSettings(max_length=64, max_new_tokens=16, relearn_steps=3)
    before = [p.detach().clone() for p in memorised.parameters()]
    result = ev.evaluate_lm(
        memorised, tokenizer, suite, settings, reference_truth_ratios=reference.forget_truth_ratios
    )
    m = result.metrics
    expected = {
        "forget_prob", "forget_rouge", "forget_truth_ratio", "forget_quality",
        "retain_prob", "retain_rouge", "retain_truth_ratio",
        "world_prob", "world_rouge", "world_truth_ratio", "model_utility",
        "holdout_prob", "holdout_rouge",
        "mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_pp",
        "extraction_strength", "exact_memorisation", "fluency_nll", "fluency_repetition",
        "relearn_prob_before", "relearn_prob_after", "relearn_rouge_after",
    }  # fmt: skip
    assert set(m) == expected
    for key, value in m.items():
        if key != "fluency_nll":
            assert 0.0 <= value <= 1.0, (key, value)
    assert m["forget_quality"] < 0.01 and m["mia_loss"] > 0.9
    # The memorised people's answers are likelier than the never-seen people's.
    assert m["forget_prob"] > m["holdout_prob"]
    assert m["model_utility"] == pytest.approx(
        ev.harmonic_mean([m[k] for k in expected if k.startswith(("retain_", "world_"))])
    )
    # the relearning attack fine-tunes a copy, never the model itself
    assert all(torch.equal(a, b) for a, b in zip(before, memorised.parameters(), strict=True))


def test_relearning_brings_back_hidden_facts_more_than_unseen_ones(
    tokenizer, world, memorised, never_saw
) -> None:
    """A few gradient-ascent steps hide the forget facts; relearning on half of them brings
    the other half back faster than it teaches a model that never saw them."""
    forget = [i.record for i in world["forget"]]
    hidden = tiny_llama(tokenizer, seed=0)
    hidden.load_state_dict(memorised.state_dict())
    enc = encode(tokenizer, forget, 64)
    optimizer = torch.optim.AdamW(hidden.parameters(), lr=1e-3)
    hidden.train()
    for _ in range(4):
        loss = -hidden(**next(iter(iterate(enc, len(forget), seed=0)))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hidden.eval()
    settings = ev.EvalSettings(max_length=64, max_new_tokens=16, relearn_steps=8, relearn_lr=1e-3)
    attacked = ev.relearn_attack(hidden, tokenizer, forget, settings)
    reference = ev.relearn_attack(never_saw, tokenizer, forget, settings)
    assert attacked.trained_on + attacked.measured_on == len(forget)
    assert attacked.before < 0.5 * ev.answer_probability(memorised, tokenizer, forget).mean()
    assert attacked.after - attacked.before > 0.05
    assert attacked.after - attacked.before > reference.after - reference.before


def test_bad_input_is_refused(tokenizer, world) -> None:
    with pytest.raises(ev.LMEvaluationError):
        ev.QAItem(TextRecord("t", text="just text"))
    with pytest.raises(ev.LMEvaluationError):
        ev.EvalSettings(min_k=0.0)
    item = ev.QAItem(world["forget"][0].record)  # no alternatives
    with pytest.raises(ev.LMEvaluationError, match="truth ratio"):
        ev.truth_ratios(tiny_llama(tokenizer), tokenizer, [item])
    with pytest.raises(ev.LMEvaluationError, match="holdout"):
        ev.EvalSuite(forget=[item], retain=[item], holdout=[], world=[item])


def test_evaluate_lm_figures_equal_the_one_metric_functions(tokenizer, world, memorised) -> None:
    """evaluate_lm scores each group's answers once and reuses them; each figure must stay
    what the function that computes it alone gives."""
    suite = ev.EvalSuite(
        forget=world["forget"],
        retain=world["retain"],
        holdout=world["holdout"],
        world=world["retain"][:4],
    )
    m = ev.evaluate_lm(memorised, tokenizer, suite, SETTINGS).metrics
    for name in ("forget", "retain"):
        records = [i.record for i in suite.__dict__[name]]
        alone = ev.answer_probability(memorised, tokenizer, records, SETTINGS).mean()
        assert m[f"{name}_prob"] == pytest.approx(alone, rel=1e-9)
    assert m["world_prob"] == pytest.approx(
        ev.normalised_answer_probability(memorised, tokenizer, suite.world, SETTINGS).mean(),
        rel=1e-9,
    )
    ratios = ev.truth_ratios(memorised, tokenizer, suite.world, SETTINGS)
    assert m["world_truth_ratio"] == pytest.approx(ev.truth_ratio_score(ratios, "retain"))
    world_records = [i.record for i in suite.world]
    answers = ev.greedy_answers(memorised, tokenizer, world_records, SETTINGS)
    alone_fluency = ev.fluency(memorised, tokenizer, world_records, SETTINGS, answers)
    assert m["fluency_nll"] == pytest.approx(alone_fluency["nll"], rel=1e-9)
    assert m["fluency_repetition"] == alone_fluency["repetition"]
