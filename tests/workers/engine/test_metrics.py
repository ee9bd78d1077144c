"""Every metric against a case small enough to compute by hand (numbers in comments)."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from workers.engine import metrics as M


def test_accuracy_and_ua_ra_ta() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    labels = np.array([0, 1, 1])
    assert M.accuracy(logits, labels) == pytest.approx(2 / 3)
    assert M.accuracy(np.array([0, 1, 0]), labels) == pytest.approx(2 / 3)  # predictions
    assert M.unlearning_accuracy(logits, labels) == pytest.approx(1 / 3)
    scores = M.ua_ra_ta((logits, labels), (logits, np.array([0, 1, 0])), (logits, labels))
    assert scores == pytest.approx({"UA": 1 / 3, "RA": 1.0, "TA": 2 / 3})
    with pytest.raises(ValueError):
        M.accuracy(np.zeros((0, 2)), np.zeros(0))


def test_avg_gap_is_mean_absolute_difference() -> None:
    ours = {"UA": 0.1, "RA": 0.9, "TA": 0.8, "MIA": 0.3}
    retrain = {"UA": 0.2, "RA": 1.0, "TA": 0.8, "MIA": 0.1}
    # (0.1 + 0.1 + 0 + 0.2) / 4
    assert M.avg_gap(ours, retrain) == pytest.approx(0.1)
    with pytest.raises(KeyError, match="MIA"):
        M.avg_gap({"UA": 0, "RA": 0, "TA": 0}, retrain)


def test_kl_and_js_divergence() -> None:
    p = np.array([[0.0, 0.0]])  # softmax (1/2, 1/2)
    q = np.array([[math.log(3.0), 0.0]])  # softmax (3/4, 1/4)
    # KL(p||q) = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3)
    assert M.kl_divergence(p, q) == pytest.approx(0.5 * math.log(4 / 3))
    assert M.kl_divergence(p, p) == pytest.approx(0.0)
    # m = (5/8, 3/8)
    kl_pm = 0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)
    kl_qm = 0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)
    assert M.js_divergence(p, q) == pytest.approx(0.5 * kl_pm + 0.5 * kl_qm)
    assert M.js_divergence(p, q) == pytest.approx(M.js_divergence(q, p))
    # Disjoint one-hot distributions reach the JS bound ln 2.
    far = M.js_divergence(np.array([[100.0, -100.0]]), np.array([[-100.0, 100.0]]))
    assert far == pytest.approx(math.log(2))


def test_loss_threshold_attack_auc() -> None:
    assert M.loss_threshold_attack_auc([0.1, 0.2], [0.3, 0.4]) == pytest.approx(1.0)
    # Pairs (member, non-member): (.1,.2) ok, (.1,.3) ok, (.4,.2) no, (.4,.3) no -> 2/4.
    assert M.loss_threshold_attack_auc([0.1, 0.4], [0.2, 0.3]) == pytest.approx(0.5)
    assert M.loss_threshold_attack_auc([0.9], [0.1]) == pytest.approx(0.0)


def _logits_with_confidence(conf: np.ndarray, labels: np.ndarray, k: int = 4) -> np.ndarray:
    """Logits whose softmax gives ``conf`` to the label and spreads the rest evenly."""
    p = np.tile(((1 - conf) / (k - 1))[:, None], (1, k))
    p[np.arange(len(labels)), labels] = conf
    return np.log(p)


def test_mia_efficacy_separates_members_from_non_members() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    retain = _logits_with_confidence(rng.uniform(0.95, 1.0, 200), labels)  # members
    test = _logits_with_confidence(rng.uniform(0.3, 0.6, 100), labels[:100])  # non-members
    f_labels = labels[:50]
    remembered = _logits_with_confidence(rng.uniform(0.95, 1.0, 50), f_labels)
    forgotten = _logits_with_confidence(rng.uniform(0.3, 0.6, 50), f_labels)
    args = (retain, labels, test, labels[:100])
    assert M.mia_efficacy(*args, remembered, f_labels) == pytest.approx(0.0)
    assert M.mia_efficacy(*args, forgotten, f_labels) == pytest.approx(1.0)
    for feature in ("entropy", "m_entropy", "prob"):
        assert M.mia_efficacy(*args, forgotten, f_labels, feature=feature) > 0.9


def test_mia_features_by_hand() -> None:
    logits = np.log(np.array([[0.5, 0.25, 0.25]]))
    labels = np.array([0])
    assert M.mia_features(logits, labels, "confidence")[0, 0] == pytest.approx(0.5)
    # entropy = -(.5 ln .5 + 2 * .25 ln .25) = 1.5 ln 2
    assert M.mia_features(logits, labels, "entropy")[0, 0] == pytest.approx(1.5 * math.log(2))
    # m-entropy = -(1-.5) ln .5 - 2 * .25 ln .75
    expected = -0.5 * math.log(0.5) - 2 * 0.25 * math.log(0.75)
    assert M.mia_features(logits, labels, "m_entropy")[0, 0] == pytest.approx(expected)
    assert M.mia_features(logits, labels, "correctness")[0, 0] == 1.0


def test_linear_probe_accuracy() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 50)
    separable = labels[:, None] * 5.0 + rng.normal(0, 0.1, (100, 3))
    assert M.linear_probe_accuracy(separable, labels, separable, labels) == pytest.approx(1.0)
    # Features that carry no label information: the probe can only guess.
    noise = rng.normal(0, 1, (100, 3))
    assert M.linear_probe_accuracy(noise[::2], labels[::2], noise[1::2], labels[1::2]) < 0.8


def test_logit_scaled_confidence() -> None:
    logits = np.array([[math.log(3.0), 0.0], [0.0, 0.0], [0.0, 0.0]])
    # p = (3/4, 1/4): ln(.75/.25) = ln 3; the other way round: -ln 3.
    out = M.logit_scaled_confidence(logits[:1].repeat(2, 0), np.array([0, 1]))
    assert out == pytest.approx([math.log(3), -math.log(3)])
    three = M.logit_scaled_confidence(np.zeros((1, 3)), np.array([0]))
    assert three[0] == pytest.approx(math.log(1 / 3) - math.log(2 / 3))
    # Huge logits stay finite.
    assert np.isfinite(M.logit_scaled_confidence(np.array([[1000.0, -1000.0]]), np.array([0])))


def test_example_epsilon_by_hand() -> None:
    retrained = np.array([0.0, 1.0, 2.0, 3.0])
    unlearned = np.array([1.0, 2.0, 3.0, 4.0])
    # Best single threshold t = 2: TPR 3/4, FPR 2/4 -> eps = ln((1 - d - 1/2) / (1/4)).
    # No double threshold does better (see the derivation in metrics.example_epsilon).
    expected = math.log((1 - M.DELTA - 0.5) / 0.25)
    assert M.example_epsilon(unlearned, retrained) == pytest.approx(expected)
    # Same distribution: no attack beats guessing.
    assert M.example_epsilon(retrained, retrained) == 0.0
    # Perfect separation, and a spike against a spread: the cap.
    assert M.example_epsilon(retrained + 10, retrained) == M.EPSILON_CAP
    spike = np.array([1.0, 1.0, 1.0, 1.0001])
    assert M.example_epsilon(spike, retrained) == M.EPSILON_CAP


def test_double_threshold_catches_what_single_threshold_misses() -> None:
    # Unlearned sits in the middle of a wider retrained spread: no single threshold
    # separates them, an interval does.
    retrained = np.array([-3.0, -2.0, -1.0, 1.0, 2.0, 3.0])
    unlearned = np.array([-0.5, -0.3, -0.1, 0.1, 0.3, 0.5])
    assert M.example_epsilon(unlearned, retrained) == M.EPSILON_CAP
    retrained = np.array([-3.0, -2.0, -0.2, 0.2, 2.0, 3.0])
    # [-0.5, 0.5] has FNR 0 (dropped). [-0.3, 0.5] holds 5/6 of the unlearned values and
    # 2/6 of the retrained ones (-0.2, 0.2): eps = ln((1 - d - 2/6) / (1/6)) = ~ln 4.
    # The best single threshold only reaches ln 2.
    eps = M.example_epsilon(unlearned, retrained)
    assert eps == pytest.approx(math.log((1 - M.DELTA - 2 / 6) / (1 / 6)))


def test_epsilon_points_buckets() -> None:
    # N = 512: eps_max = ceil(ln 511) = 7, so buckets [0, .5) ... [6.5, 7).
    assert M.epsilon_points(0.3, 512) == 1.0
    assert M.epsilon_points(0.5, 512) == 0.5
    assert M.epsilon_points(0.7, 512) == 0.5
    assert M.epsilon_points(6.9, 512) == 2.0**-13
    assert M.epsilon_points(7.0, 512) == 0.0
    assert M.epsilon_points(M.EPSILON_CAP, 512) == 0.0


def test_forget_score_by_hand() -> None:
    retrained = np.array([[0.0], [1.0], [2.0], [3.0]])  # N = 4 models, M = 1 example
    unlearned = retrained + 1.0
    # eps ~ ln 2 lies in [0.5, 1): 1/2 point; N = 4 gives eps_max = ceil(ln 3) = 2.
    result = M.forget_score(unlearned, retrained, ra_ratio=0.9, ta_ratio=0.8)
    assert result.forget_quality == pytest.approx(0.5)
    assert result.score == pytest.approx(0.5 * 0.9 * 0.8)
    # Identical runs: full marks; two examples average.
    both = np.hstack([retrained, retrained + 100])
    same = M.forget_score(np.hstack([retrained, retrained]), both)
    assert same.forget_quality == pytest.approx(0.5)  # (1 + 0) / 2
    with pytest.raises(ValueError, match="at least 3"):
        M.forget_score(np.zeros((2, 1)), np.zeros((2, 1)))


def test_metrics_module_needs_no_torch() -> None:
    import subprocess

    code = "import sys, workers.engine.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _naive_epsilon(unlearned: np.ndarray, retrained: np.ndarray) -> float:
    """Loop over every threshold by the book, to cross-check the vectorised version."""
    pos, neg = (
        (retrained, unlearned)
        if np.median(retrained) > np.median(unlearned)
        else (unlearned, retrained)
    )
    peaky, wide = (pos, neg) if np.ptp(pos) < np.ptp(neg) else (neg, pos)
    values = sorted(set(pos) | set(neg))
    rates = [(np.mean(neg >= t), np.mean(pos < t)) for t in [*values, math.inf]]
    rates += [
        (np.mean((wide >= lo) & (wide <= hi)), 1 - np.mean((peaky >= lo) & (peaky <= hi)))
        for lo in values
        for hi in values
        if lo <= hi
    ]
    best = 0.0
    for fpr, fnr in rates:
        if fpr == 0 and fnr == 0:
            return M.EPSILON_CAP
        if fpr == 0 or fnr == 0:
            continue
        terms = [
            math.log(1 - M.DELTA - a) - math.log(b)
            for a, b in ((fpr, fnr), (fnr, fpr))
            if 1 - M.DELTA - a > 0
        ]
        best = max([best, *terms])
    return min(best, M.EPSILON_CAP)


def test_example_epsilon_matches_a_naive_scan() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        u = np.round(rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), 7), 1)
        r = np.round(rng.normal(0, 1, 7), 1)
        if min(np.ptp(u), np.ptp(r)) / max(np.ptp(u), np.ptp(r)) < 0.01:
            continue
        assert M.example_epsilon(u, r) == pytest.approx(_naive_epsilon(u, r))
