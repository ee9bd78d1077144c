"""TOFU / MUSE-style evaluation of a Hugging Face causal LM: did it forget, what did it keep.

Every score comes from the model's own token log-probabilities on the same token rows it
was fine-tuned on (``data.encode``: prompt masked, answer + eos scored), or from its greedy
answers to the same prompts (``data.prompt_of``). What each number should show after a
good unlearning run is said in its function; in one line: on the **forget** people the
model should look like the re-fine-tune that never saw them (forget quality high,
membership AUC ≈ 0.5, extraction low), and on the **retain** people and the **world
facts** like the original fine-tune (model utility unchanged, fluency unchanged).

Definitions follow TOFU (Maini et al. 2024, arXiv:2401.06121) for answer probability,
ROUGE-L recall, truth ratio, forget quality and model utility; Shi et al. 2024 (Min-K %),
Zhang et al. 2024 (Min-K %++) and Carlini et al. 2021 (zlib ratio) for membership
scores; Carlini et al. 2021 / OpenUnlearning for extraction strength and Tirumala et al.
2022 for exact memorisation. The code is ours; ROUGE-L is a plain LCS (no new dependency).
"""

from __future__ import annotations

import copy
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from contracts.causal_lm import LMDecoding
from workers.engine.lm.data import (
    IGNORE_INDEX,
    Encoded,
    LMDataError,
    TextRecord,
    answer_of,
    encode,
    iterate,
    prompt_of,
)
from workers.engine.lm.generation import generate

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "MIA_ATTACKS",
    "LMEvaluationError",
    "EvalSettings",
    "EvalSuite",
    "LMEvaluation",
    "QAItem",
    "RelearnResult",
    "TokenScores",
    "answer_probability",
    "evaluate_lm",
    "exact_memorisation",
    "extraction_strength",
    "fluency",
    "forget_quality",
    "greedy_answers",
    "harmonic_mean",
    "membership_auc",
    "membership_scores",
    "model_utility",
    "normalised_answer_probability",
    "relearn_attack",
    "repetition_rate",
    "rouge_l_recall",
    "rouge_recall",
    "score_tokens",
    "train_steps",
    "truth_ratio_score",
    "truth_ratios",
]

# The membership attacks, in table order. Each score is "higher = more likely a member".
MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")


class LMEvaluationError(LMDataError):
    """An evaluation cannot be computed from what it was given (bad input)."""


@dataclass(frozen=True)
class QAItem:
    """A question/answer record with the alternatives the truth ratio compares.

    ``paraphrased_answer`` says the same as the answer in other words; ``perturbed_answers``
    are wrong answers of the same type (another city, another year). Without them an item
    still gives answer probability, ROUGE and membership scores, but no truth ratio.
    """

    record: TextRecord
    paraphrased_answer: str | None = None
    perturbed_answers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.record.is_qa:
            raise LMEvaluationError(
                f"record {self.record.sample_id!r}: evaluation items are question/answer records"
            )

    @property
    def has_alternatives(self) -> bool:
        return bool(self.paraphrased_answer) and len(self.perturbed_answers) > 0


# --------------------------------------------------------------------------- token pass


@dataclass
class TokenScores:
    """Per record, one value per scored (label) token, in order.

    ``nll``: negative log-likelihood of the token; ``correct``: the model's argmax is the
    token; ``z``: Min-K %++'s standardised log-probability, (log p(x) − μ) / σ with μ, σ²
    the mean and variance of log p under the model's own next-token distribution.
    """

    sample_ids: list[str]
    nll: list[np.ndarray]
    correct: list[np.ndarray]
    z: list[np.ndarray]

    def mean_nll(self) -> np.ndarray:
        return np.array([float(v.mean()) if v.size else math.nan for v in self.nll])


def _device_of(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def score_tokens(model: PreTrainedModel, encoded: Encoded, batch_size: int = 8) -> TokenScores:
    """One forward pass over ``encoded`` (in order): the per-token scores every metric uses."""
    if batch_size < 1:
        raise LMEvaluationError(f"batch_size must be at least 1, got {batch_size}")
    was_training = model.training
    model.eval()
    device = _device_of(model)
    out = TokenScores(sample_ids=list(encoded.sample_ids), nll=[], correct=[], z=[])
    try:
        for batch in iterate(encoded, batch_size, seed=0, shuffle=False):
            ids = batch["input_ids"].to(device)
            mask = batch["attention_mask"].to(device)
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            labels = batch["labels"][:, 1:].to(device)
            logp = torch.log_softmax(logits, dim=-1)
            scored = labels != IGNORE_INDEX
            target = labels.clamp_min(0)
            token_logp = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            probs = logp.exp()
            mu = (probs * logp).sum(-1)
            var = (probs * logp.square()).sum(-1) - mu.square()
            z = (token_logp - mu) / var.clamp_min(1e-12).sqrt()
            correct = logits.argmax(-1) == target
            for row in range(ids.shape[0]):
                keep = scored[row]
                out.nll.append((-token_logp[row][keep]).double().cpu().numpy())
                out.correct.append(correct[row][keep].cpu().numpy())
                out.z.append(z[row][keep].double().cpu().numpy())
    finally:
        model.train(was_training)
    return out


def _scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    settings: EvalSettings,
    answers: Sequence[str] | None = None,
) -> TokenScores:
    encoded = encode(tokenizer, records, settings.max_length, answers=answers)
    return score_tokens(model, encoded, settings.batch_size)


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class EvalSettings:
    """How an evaluation runs; the defaults fit the fictitious-people answers."""

    max_length: int = 128
    batch_size: int = 8
    max_new_tokens: int = 32  # greedy answer length for ROUGE
    min_k: float = 0.4  # the share of lowest-scored tokens Min-K % and Min-K %++ average
    relearn_steps: int = 0  # 0: no relearning attack
    relearn_lr: float = 1e-4
    relearn_batch_size: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.min_k <= 1.0:
            raise LMEvaluationError(f"min_k must be in (0, 1], got {self.min_k}")
        if self.max_new_tokens < 1:
            raise LMEvaluationError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")


# --------------------------------------------------------------------------- probability


def answer_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    settings: EvalSettings | None = None,
    answers: Sequence[str] | None = None,
) -> np.ndarray:
    """Length-normalised probability of each answer given its question, P(a|q)^(1/|a|).

    The eos the fine-tune trained on counts as an answer token. After unlearning it should
    drop on the forget set towards the re-fine-tune's level and stay on the retain set.
    """
    settings = settings or EvalSettings()
    return np.exp(-_scores(model, tokenizer, records, settings, answers).mean_nll())


def normalised_answer_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[QAItem],
    settings: EvalSettings | None = None,
) -> np.ndarray:
    """TOFU's probability for world facts: P(a) / (P(a) + Σ P(perturbed)), normalised per token.

    The share of probability the model gives the true answer among the offered options;
    general knowledge should keep it after unlearning.
    """
    settings = settings or EvalSettings()
    if not all(item.perturbed_answers for item in items):
        raise LMEvaluationError("normalised probability needs perturbed answers on every item")
    records = [item.record for item in items]
    true_p = answer_probability(model, tokenizer, records, settings)
    wrong = _alternative_probabilities(model, tokenizer, items, settings)
    return true_p / (true_p + np.array([w.sum() for w in wrong]))


def _alternative_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[QAItem],
    settings: EvalSettings,
) -> list[np.ndarray]:
    """Normalised probability of every perturbed answer, item by item (one batched pass)."""
    rows: list[TextRecord] = []
    answers: list[str] = []
    owner: list[int] = []
    for i, item in enumerate(items):
        for wrong in item.perturbed_answers:
            rows.append(item.record)
            answers.append(wrong)
            owner.append(i)
    probs = answer_probability(model, tokenizer, rows, settings, answers=answers)
    grouped: list[list[float]] = [[] for _ in items]
    for i, p in zip(owner, probs, strict=True):
        grouped[i].append(float(p))
    return [np.array(g) for g in grouped]


def truth_ratios(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[QAItem],
    settings: EvalSettings | None = None,
) -> np.ndarray:
    """TOFU's truth ratio per item: mean P(perturbed) / P(paraphrased), each normalised.

    Near 0: the model clearly prefers the (paraphrased) truth, it knows the fact; near 1
    or above: it cannot tell the truth from same-type wrong answers, like a model that
    never saw the person. Forget quality compares this distribution with the reference's.
    """
    settings = settings or EvalSettings()
    missing = [item.record.sample_id for item in items if not item.has_alternatives]
    if missing:
        raise LMEvaluationError(
            f"truth ratio needs a paraphrased and perturbed answers; missing on {missing[:3]}"
        )
    wrong = _alternative_probabilities(model, tokenizer, items, settings)
    return _ratios(_paraphrased_probability(model, tokenizer, items, settings), wrong)


def _paraphrased_probability(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[QAItem],
    settings: EvalSettings,
) -> np.ndarray:
    records = [item.record for item in items]
    answers = [item.paraphrased_answer or "" for item in items]
    return answer_probability(model, tokenizer, records, settings, answers=answers)


def _ratios(paraphrased: np.ndarray, wrong: Sequence[np.ndarray]) -> np.ndarray:
    """Truth ratios from the paraphrase's and the perturbed answers' probabilities."""
    mean_wrong = np.array([w.mean() for w in wrong])
    return mean_wrong / np.maximum(paraphrased, 1e-300)


def truth_ratio_score(ratios: Sequence[float] | np.ndarray, split: str) -> float:
    """The truth ratio as TOFU reports it, in [0, 1], higher = better for that split.

    ``split="retain"`` (also world facts): mean of max(0, 1 − R), how strongly the model
    prefers the truth — utility. ``split="forget"``: mean of min(R, 1/R), how close the
    model is to indifference between truth and falsehood — TOFU's forget truth ratio.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0:
        raise LMEvaluationError("truth ratio score of no items")
    if split == "forget":
        return float(np.mean(np.minimum(r, 1.0 / np.maximum(r, 1e-300))))
    if split == "retain":
        return float(np.mean(np.maximum(0.0, 1.0 - r)))
    raise LMEvaluationError(f"split must be 'forget' or 'retain', got {split!r}")


def forget_quality(
    model_ratios: Sequence[float] | np.ndarray, reference_ratios: Sequence[float] | np.ndarray
) -> float:
    """TOFU's forget quality: the KS-test p-value of forget-set truth ratios, model vs reference.

    The reference is the re-fine-tune without the forget people. High (≥ 0.05, ideally
    near 1): the two distributions cannot be told apart, the model forgot like exact
    unlearning; tiny (e.g. 1e-5 for the untouched fine-tune): it still knows them.
    """
    a = np.asarray(model_ratios, dtype=np.float64)
    b = np.asarray(reference_ratios, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise LMEvaluationError("forget quality needs truth ratios from both models")
    return float(ks_2samp(a, b).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean; 0 if any value is 0 (one lost skill sinks the whole utility, as in TOFU)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise LMEvaluationError("harmonic mean of nothing")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise LMEvaluationError(f"harmonic mean needs finite non-negative values, got {arr}")
    if np.any(arr == 0):
        return 0.0
    return float(arr.size / np.sum(1.0 / arr))


def model_utility(parts: Mapping[str, float]) -> float:
    """TOFU's model utility: harmonic mean of the retain-set and world-facts scores.

    ``parts`` are ``{retain,world}_{prob,rouge,truth_ratio}`` as ``evaluate_lm`` computes
    them (TOFU also has real authors; our fictitious world has only these two). Unlearning
    should leave it within a few percent of the fine-tune's.
    """
    return harmonic_mean(list(parts.values()))


# --------------------------------------------------------------------------- generation


def greedy_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    settings: EvalSettings | None = None,
) -> list[str]:
    """The model's greedy answer to each record's question, through the generate job's own
    function (``generation.generate``, the fine-tune's template), on the model's device."""
    settings = settings or EvalSettings()
    decoding = LMDecoding(
        template=False,
        max_new_tokens=settings.max_new_tokens,
        decoding="greedy",
        batch_size=min(settings.batch_size, 256),
        device=str(_device_of(model)),
    )
    return generate(model, tokenizer, [prompt_of(r) for r in records], decoding)


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence length, O(|a|·|b|) time, O(|b|) memory."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l_recall(prediction: str, reference: str) -> float:
    """ROUGE-L recall: LCS of lower-cased word tokens over the reference's length.

    1.0 when every word of the reference appears in order in the prediction (extra words
    are not penalised: recall). TOFU reports it between the greedy answer and the truth.
    """
    ref = _words(reference)
    if not ref:
        raise LMEvaluationError("ROUGE-L of an empty reference")
    return _lcs_length(_words(prediction), ref) / len(ref)


def rouge_recall(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    settings: EvalSettings | None = None,
    generations: Sequence[str] | None = None,
) -> np.ndarray:
    """ROUGE-L recall of the model's greedy answer against each record's answer.

    A model that forgot a person no longer says its answers (low on the forget set,
    about where the re-fine-tune is: it can still guess common words), and still says
    everyone else's (retain, world facts).
    """
    if generations is None:
        generations = greedy_answers(model, tokenizer, records, settings)
    return np.array(
        [rouge_l_recall(g, r.answer or "") for g, r in zip(generations, records, strict=True)]
    )


def repetition_rate(texts: Sequence[str]) -> float:
    """Share of word bigrams that repeat an earlier bigram of the same text (0 = none).

    A degenerate model (gradient ascent gone too far) loops ("the the the"); a fluent
    one rarely repeats a bigram in a short answer.
    """
    total = repeated = 0
    for text in texts:
        words = _words(text)
        seen: set[tuple[str, str]] = set()
        for bigram in zip(words, words[1:], strict=False):
            total += 1
            if bigram in seen:
                repeated += 1
            seen.add(bigram)
    return repeated / total if total else 0.0


def fluency(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    settings: EvalSettings | None = None,
    generations: Sequence[str] | None = None,
) -> dict[str, float]:
    """Fluency on general text: mean token NLL of the reference answers (or texts), and the
    repetition rate of the model's own greedy answers when given.

    ``nll`` is the cross-entropy per token of the reference, lower = more fluent; after
    unlearning it should stay at the fine-tune's level (a rise means collateral damage).
    """
    settings = settings or EvalSettings()
    out = {"nll": float(np.mean(_scores(model, tokenizer, records, settings).mean_nll()))}
    if generations is not None:
        out["repetition"] = repetition_rate(generations)
    return out


# --------------------------------------------------------------------------- membership


def _min_k_mean(values: np.ndarray, k: float) -> float:
    if values.size == 0:
        return math.nan
    n = max(1, int(math.ceil(k * values.size)))
    return float(np.sort(values)[:n].mean())


def membership_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[TextRecord],
    settings: EvalSettings | None = None,
    scores: TokenScores | None = None,
) -> dict[str, np.ndarray]:
    """Per record, the four attacks' scores, higher = more likely in the training set.

    ``loss``: −mean token NLL. ``zlib``: −(mean NLL / zlib-compressed length of the text in
    bytes), so text that is merely easy is not mistaken for memorised. ``min_k``: mean
    log-probability of the ``min_k`` share of least likely tokens. ``min_k_pp``: the same
    over the standardised log-probabilities (Min-K %++).
    """
    settings = settings or EvalSettings()
    if scores is None:
        scores = _scores(model, tokenizer, records, settings)
    mean_nll = scores.mean_nll()
    zlen = np.array([len(zlib.compress(answer_of(r).strip().encode("utf-8"))) for r in records])
    return {
        "loss": -mean_nll,
        "zlib": -mean_nll / np.maximum(zlen, 1),
        "min_k": np.array([_min_k_mean(-v, settings.min_k) for v in scores.nll]),
        "min_k_pp": np.array([_min_k_mean(v, settings.min_k) for v in scores.z]),
    }


def membership_auc(
    member_scores: Mapping[str, np.ndarray], nonmember_scores: Mapping[str, np.ndarray]
) -> dict[str, float]:
    """ROC AUC of each attack separating members (forget people) from held-out people.

    ≈ 1: the model still treats the forget people as training data; ≈ 0.5 (what the
    re-fine-tune shows, up to sampling noise): it cannot tell them from people it never
    saw; well below 0.5: over-unlearned, the forget people now stand out the other way
    (a signal in itself — MUSE's privacy leakage).
    """
    out = {}
    for name in MIA_ATTACKS:
        a, b = np.asarray(member_scores[name]), np.asarray(nonmember_scores[name])
        if a.size == 0 or b.size == 0:
            raise LMEvaluationError("membership AUC needs members and non-members")
        y = np.r_[np.ones(a.size), np.zeros(b.size)]
        out[name] = float(roc_auc_score(y, np.r_[a, b]))
    return out


# --------------------------------------------------------------------------- verbatim


def extraction_strength(scores: TokenScores) -> float:
    """Mean over records of 1 − k/n, k the shortest prefix of the n scored tokens from which
    greedy decoding reproduces the rest exactly (teacher-forced: all later argmaxes right).

    1: the whole answer comes out from the prompt alone; 0: not even the last token.
    Forgetting drives it to the reference's level on the forget set.
    """
    values = []
    for correct in scores.correct:
        n = correct.size
        if n == 0:
            continue
        wrong = np.flatnonzero(~correct)
        k = 0 if wrong.size == 0 else int(wrong[-1]) + 1
        values.append(1.0 - k / n)
    if not values:
        raise LMEvaluationError("extraction strength of no scored tokens")
    return float(np.mean(values))


def exact_memorisation(scores: TokenScores) -> float:
    """Mean over records of the share of scored tokens the model's argmax gets right
    (teacher-forced): how much of the text it would reproduce token by token."""
    values = [float(c.mean()) for c in scores.correct if c.size]
    if not values:
        raise LMEvaluationError("exact memorisation of no scored tokens")
    return float(np.mean(values))


# --------------------------------------------------------------------------- relearning


def train_steps(
    model: PreTrainedModel,
    encoded: Encoded,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int = 0,
) -> list[float]:
    """``steps`` AdamW steps of next-token loss on ``encoded`` (cycling, reshuffled per pass).

    The relearning attack's optimiser loop: deliberately plain (no schedule, no clipping)
    so the attack is the same for every model it is run on. Returns the losses.
    """
    if steps < 1:
        raise LMEvaluationError(f"steps must be at least 1, got {steps}")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    device = _device_of(model)
    model.train()
    losses: list[float] = []
    epoch = 0
    try:
        while len(losses) < steps:
            for batch in iterate(encoded, batch_size, seed=seed + epoch):
                loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                if len(losses) >= steps:
                    break
            epoch += 1
    finally:
        model.eval()
    return losses


@dataclass
class RelearnResult:
    """Answer probability on the held half of the forget set before and after relearning."""

    before: float
    after: float
    rouge_after: float
    trained_on: int
    measured_on: int
    steps: int

    def as_dict(self) -> dict[str, float]:
        return {
            "relearn_prob_before": self.before,
            "relearn_prob_after": self.after,
            "relearn_rouge_after": self.rouge_after,
        }


def split_halves(records: Sequence[TextRecord]) -> tuple[list[TextRecord], list[TextRecord]]:
    """Every other record of each subject (by sample id) to each half, so both halves hold
    facts about every forget person: relearning some of a person's facts must not teach
    the others, unless the model still holds them."""
    by_subject: dict[str | None, list[TextRecord]] = {}
    for record in records:
        by_subject.setdefault(record.subject_id, []).append(record)
    train: list[TextRecord] = []
    held: list[TextRecord] = []
    for group in by_subject.values():
        group = sorted(group, key=lambda r: r.sample_id)
        train += group[0::2]
        held += group[1::2]
    if not train or not held:
        raise LMEvaluationError("the relearning attack needs at least two forget records")
    return train, held


def relearn_attack(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    forget: Sequence[TextRecord],
    settings: EvalSettings,
) -> RelearnResult:
    """Fine-tune a copy for ``settings.relearn_steps`` steps on half of the forget records,
    then measure answer probability and ROUGE on the other half (the model is untouched).

    A model that only hid the facts jumps back towards the original fine-tune's numbers;
    one that removed them climbs no faster than the re-fine-tune under the same attack.
    Compare ``after`` across models, not to a fixed threshold.
    """
    if settings.relearn_steps < 1:
        raise LMEvaluationError("relearn_steps must be at least 1 for the relearning attack")
    train, held = split_halves(forget)
    before = float(np.mean(answer_probability(model, tokenizer, held, settings)))
    attacked = copy.deepcopy(model)
    train_steps(
        attacked,
        encode(tokenizer, train, settings.max_length),
        settings.relearn_steps,
        settings.relearn_lr,
        settings.relearn_batch_size,
        settings.seed,
    )
    after = float(np.mean(answer_probability(attacked, tokenizer, held, settings)))
    rouge = float(np.mean(rouge_recall(attacked, tokenizer, held, settings)))
    del attacked
    return RelearnResult(before, after, rouge, len(train), len(held), settings.relearn_steps)


# --------------------------------------------------------------------------- everything


@dataclass
class EvalSuite:
    """What one evaluation looks at (records must not overlap between the groups).

    ``forget``: the forget people's QA (members the model should lose); ``retain``: other
    fine-tuned people's QA; ``holdout``: people the fine-tune never saw (non-members for
    the membership attacks); ``world``: general facts of the world (utility, fluency);
    ``verbatim``: texts for extraction and memorisation (default: the forget records).
    """

    forget: list[QAItem]
    retain: list[QAItem]
    holdout: list[QAItem]
    world: list[QAItem]
    verbatim: list[TextRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("forget", "retain", "holdout", "world"):
            if not getattr(self, name):
                raise LMEvaluationError(f"the evaluation suite needs {name} items")


@dataclass
class LMEvaluation:
    """Flat metrics (fractions, AUCs, p-values) and the forget-set truth ratios.

    Keep ``forget_truth_ratios`` of the reference model: forget quality of any later model
    is computed against them without re-running the reference.
    """

    metrics: dict[str, float]
    forget_truth_ratios: list[float]
    generations: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": dict(self.metrics),
            "forget_truth_ratios": list(self.forget_truth_ratios),
        }


def evaluate_lm(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    suite: EvalSuite,
    settings: EvalSettings | None = None,
    reference_truth_ratios: Sequence[float] | None = None,
) -> LMEvaluation:
    """Every metric of this module on one model, the way the bench and the evaluate job
    report them. ``forget_quality`` is present only with ``reference_truth_ratios``;
    truth ratios only for groups whose items all carry alternatives; the relearning attack
    only with ``settings.relearn_steps`` > 0 (it fine-tunes a copy)."""
    settings = settings or EvalSettings()
    m: dict[str, float] = {}
    gens: dict[str, list[str]] = {}
    ratios: list[float] = []
    # Each group's true answers are scored once and reused (probability, membership,
    # fluency), and its perturbed answers once (TOFU's normalised world probability and
    # the truth ratio both need them): the same figures as the one-metric functions give.
    scores: dict[str, TokenScores] = {}
    for name, items in (("forget", suite.forget), ("retain", suite.retain), ("world", suite.world)):
        records = [item.record for item in items]
        gens[name] = greedy_answers(model, tokenizer, records, settings)
        m[f"{name}_rouge"] = float(
            np.mean(rouge_recall(model, tokenizer, records, settings, gens[name]))
        )
        scores[name] = _scores(model, tokenizer, records, settings)
        true_p = np.exp(-scores[name].mean_nll())
        with_alternatives = all(item.has_alternatives for item in items)
        wrong = (
            _alternative_probabilities(model, tokenizer, items, settings)
            if with_alternatives
            else []
        )
        if name == "world" and with_alternatives:
            m["world_prob"] = float(np.mean(true_p / (true_p + np.array([w.sum() for w in wrong]))))
        else:
            m[f"{name}_prob"] = float(np.mean(true_p))
        if with_alternatives:
            r = _ratios(_paraphrased_probability(model, tokenizer, items, settings), wrong)
            m[f"{name}_truth_ratio"] = truth_ratio_score(
                r, "forget" if name == "forget" else "retain"
            )
            if name == "forget":
                ratios = [float(x) for x in r]
    parts: dict[str, float] = {
        key: m[key]
        for key in (
            "retain_prob",
            "retain_rouge",
            "retain_truth_ratio",
            "world_prob",
            "world_rouge",
            "world_truth_ratio",
        )
        if key in m
    }
    m["model_utility"] = model_utility(parts)
    if reference_truth_ratios is not None and ratios:
        m["forget_quality"] = forget_quality(ratios, reference_truth_ratios)

    forget_records = [item.record for item in suite.forget]
    forget_scores = scores["forget"]
    members = membership_scores(model, tokenizer, forget_records, settings, forget_scores)
    holdout_records = [item.record for item in suite.holdout]
    holdout_scores = _scores(model, tokenizer, holdout_records, settings)
    nonmembers = membership_scores(model, tokenizer, holdout_records, settings, holdout_scores)
    # The same figures on people the fine-tune never saw: what a model that forgot the
    # forget people should show on them (the deletion verdict compares the two).
    m["holdout_prob"] = float(np.mean(np.exp(-holdout_scores.mean_nll())))
    gens["holdout"] = greedy_answers(model, tokenizer, holdout_records, settings)
    m["holdout_rouge"] = float(
        np.mean(rouge_recall(model, tokenizer, holdout_records, settings, gens["holdout"]))
    )
    for attack, auc in membership_auc(members, nonmembers).items():
        m[f"mia_{attack}"] = auc

    verbatim = (
        _scores(model, tokenizer, suite.verbatim, settings) if suite.verbatim else forget_scores
    )
    m["extraction_strength"] = extraction_strength(verbatim)
    m["exact_memorisation"] = exact_memorisation(verbatim)

    # ``fluency`` on the world facts, from the scores and answers already at hand.
    m["fluency_nll"] = float(np.mean(scores["world"].mean_nll()))
    m["fluency_repetition"] = repetition_rate(gens["world"])

    if settings.relearn_steps > 0:
        m.update(relearn_attack(model, tokenizer, forget_records, settings).as_dict())
    return LMEvaluation(metrics=m, forget_truth_ratios=ratios, generations=gens)
