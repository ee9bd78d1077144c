"""Unlearning metrics on model outputs: numpy and scikit-learn only, no torch.

Every function takes plain arrays (logits, labels, losses, features) so it can score
outputs computed anywhere, and is small enough to check by hand. Accuracies and rates
are fractions in [0, 1]; multiply by 100 to compare with the papers' tables.

Definitions follow Unlearn-Sparse / SalUn (UA, RA, TA, MIA-efficacy, Avg. Gap) and the
NeurIPS 2023 Machine Unlearning Challenge (forget score); see docs/REFERENCES.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

MiaFeature = Literal["confidence", "entropy", "m_entropy", "correctness", "prob"]

# --------------------------------------------------------------------------- basics


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, shifted by the row max so large logits do not overflow."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of correct predictions; ``outputs`` are logits (N x C) or predicted labels (N)."""
    outputs = np.asarray(outputs)
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    predictions = outputs.argmax(axis=1) if outputs.ndim == 2 else outputs
    return float(np.mean(predictions == labels))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy (natural log)."""
    labels = np.asarray(labels, dtype=np.int64)
    return -log_softmax(logits)[np.arange(len(labels)), labels]


def unlearning_accuracy(forget_logits: np.ndarray, forget_labels: np.ndarray) -> float:
    """UA = 1 - accuracy on the forget set (higher means more forgotten)."""
    return 1.0 - accuracy(forget_logits, forget_labels)


def ua_ra_ta(
    forget: tuple[np.ndarray, np.ndarray],
    retain: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
) -> dict[str, float]:
    """UA, RA and TA from (logits, labels) pairs of the forget, retain and test sets."""
    return {
        "UA": unlearning_accuracy(*forget),
        "RA": accuracy(*retain),
        "TA": accuracy(*test),
    }


# --------------------------------------------------------------------------- MIA


def _entropy(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=1)


def _modified_entropy(p: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Song & Mittal's m-entropy: -(1-p_y) log p_y - sum_{i!=y} p_i log(1-p_i)."""
    eps = 1e-30
    rows = np.arange(len(labels))
    p_y = p[rows, labels]
    others = p * np.log(np.clip(1.0 - p, eps, None))
    others[rows, labels] = 0.0
    return -(1.0 - p_y) * np.log(np.clip(p_y, eps, None)) - others.sum(axis=1)


def mia_features(logits: np.ndarray, labels: np.ndarray, feature: MiaFeature) -> np.ndarray:
    """The output statistic the SVC attack sees, as an N x d matrix."""
    p = softmax(logits)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    if feature == "confidence":
        out = p[rows, labels]
    elif feature == "entropy":
        out = _entropy(p)
    elif feature == "m_entropy":
        out = _modified_entropy(p, labels)
    elif feature == "correctness":
        out = (p.argmax(axis=1) == labels).astype(np.float64)
    elif feature == "prob":
        return p
    else:
        raise ValueError(f"unknown MIA feature {feature!r}")
    return out.reshape(-1, 1)


def mia_efficacy(
    retain_logits: np.ndarray,
    retain_labels: np.ndarray,
    test_logits: np.ndarray,
    test_labels: np.ndarray,
    forget_logits: np.ndarray,
    forget_labels: np.ndarray,
    feature: MiaFeature = "confidence",
    seed: int = 0,
) -> float:
    """MIA-efficacy (Unlearn-Sparse, SalUn): share of the forget set judged non-member.

    An RBF SVC (C=3, gamma='auto', as in the reference code) learns to tell retain
    samples (members) from test samples (non-members) by one output statistic, then
    classifies the forget set. Higher means the forget set looks less like training
    data. The retain set is subsampled to the size of the test set so the attack is
    trained on balanced classes. SalUn reports the 'confidence' feature.
    """
    rng = np.random.default_rng(seed)
    retain_labels = np.asarray(retain_labels)
    if len(retain_labels) > len(test_labels):
        keep = np.sort(rng.choice(len(retain_labels), size=len(test_labels), replace=False))
        retain_logits, retain_labels = np.asarray(retain_logits)[keep], retain_labels[keep]
    x = np.concatenate(
        [
            mia_features(retain_logits, retain_labels, feature),
            mia_features(test_logits, test_labels, feature),
        ]
    )
    y = np.concatenate([np.ones(len(retain_labels)), np.zeros(len(test_labels))])
    attack = SVC(C=3, gamma="auto", kernel="rbf")
    attack.fit(x, y)
    predicted_member = attack.predict(mia_features(forget_logits, forget_labels, feature))
    return float(1.0 - predicted_member.mean())


def loss_threshold_attack_auc(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> float:
    """ROC AUC of the attack "lower loss means member" (0.5: no leak, 1: total leak)."""
    members = np.asarray(member_losses, dtype=np.float64)
    nonmembers = np.asarray(nonmember_losses, dtype=np.float64)
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    scores = -np.concatenate([members, nonmembers])
    return float(roc_auc_score(y, scores))


# --------------------------------------------------------------------------- gaps


GAP_KEYS = ("UA", "RA", "TA", "MIA")


def avg_gap(
    metrics: Mapping[str, float],
    reference: Mapping[str, float],
    keys: tuple[str, ...] = GAP_KEYS,
) -> float:
    """Avg. Gap (SalUn): mean |metric - reference| over UA, RA, TA and MIA.

    ``reference`` is the retrained model's numbers; 0 means indistinguishable from it.
    """
    missing = [k for k in keys if k not in metrics or k not in reference]
    if missing:
        raise KeyError(f"avg_gap needs {list(keys)}; missing {missing}")
    return float(np.mean([abs(metrics[k] - reference[k]) for k in keys]))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Mean over samples of KL(softmax(p) || softmax(q)), in nats."""
    log_p, log_q = log_softmax(p_logits), log_softmax(q_logits)
    return float(np.mean((np.exp(log_p) * (log_p - log_q)).sum(axis=1)))


def js_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """Mean over samples of the Jensen-Shannon divergence of the two softmaxes (nats, <= ln 2)."""
    p, q = softmax(p_logits), softmax(q_logits)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0).sum(axis=1)

    return float(np.mean(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def linear_probe_accuracy(
    features_train: np.ndarray,
    labels_train: np.ndarray,
    features_eval: np.ndarray,
    labels_eval: np.ndarray,
    seed: int = 0,
    max_iter: int = 1000,
) -> float:
    """Accuracy of a logistic regression trained on frozen features.

    A forgotten class that a linear probe still separates was forgotten only in the
    head ("shallow" forgetting, Jung et al. 2025); the features still hold it.
    """
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed)
    )
    probe.fit(np.asarray(features_train), np.asarray(labels_train))
    return float(probe.score(np.asarray(features_eval), np.asarray(labels_eval)))


# --------------------------------------------------------------------------- challenge

DELTA = 1e-5
EPSILON_CAP = 50.0


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log p(correct) - log sum p(wrong) = logit_y - logsumexp(other logits), stably."""
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    correct = z[rows, labels]
    others = z.copy()
    others[rows, labels] = -np.inf
    top = others.max(axis=1)
    return correct - (top + np.log(np.exp(others - top[:, None]).sum(axis=1)))


def _epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> float:
    """Max epsilon over thresholds, with the challenge's handling of zero rates."""
    fpr = np.asarray(fpr, dtype=np.float64).ravel()
    fnr = np.asarray(fnr, dtype=np.float64).ravel()
    if np.any((fpr == 0) & (fnr == 0)):
        return math.inf  # a perfect separation
    keep = (fpr > 0) & (fnr > 0)  # one rate at 0 alone: too few samples to trust
    if not keep.any():
        return 0.0
    fpr, fnr = fpr[keep], fnr[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(1 - delta - fpr) - np.log(fnr)
        b = np.log(1 - delta - fnr) - np.log(fpr)
    values = np.fmax(a, b)  # fmax ignores the NaN from log of a negative number
    if np.all(np.isnan(values)):
        return 0.0
    return float(max(np.nanmax(values), 0.0))


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """The (epsilon, delta) an optimal threshold attacker achieves on one forget example.

    ``unlearned`` and ``retrained`` hold the example's confidence under each of the N
    models. Attacks: one threshold (predict "positive", the set with the larger median,
    at or above it) and two thresholds (predict the set with the smaller spread inside
    [l, r]). Where the reference code scans a grid of thresholds, we try every cut
    between observed values, which is the exact maximum over both families.
    """
    u = np.asarray(unlearned, dtype=np.float64).ravel()
    r = np.asarray(retrained, dtype=np.float64).ravel()
    u_range, r_range = np.ptp(u), np.ptp(r)
    largest, smallest = max(u_range, r_range), min(u_range, r_range)
    if largest == 0:
        return 0.0 if u[0] == r[0] else EPSILON_CAP
    if smallest / largest < 0.01:
        # One distribution is a spike: the reference scores this as the worst case.
        return EPSILON_CAP
    pos, neg = (r, u) if np.median(r) > np.median(u) else (u, r)
    values = np.unique(np.concatenate([pos, neg]))
    # Single threshold t over every observed value and +inf: predict positive if c >= t.
    cuts = np.append(values, np.inf)
    tpr = (pos[None, :] >= cuts[:, None]).mean(axis=1)
    fpr = (neg[None, :] >= cuts[:, None]).mean(axis=1)
    eps_single = _epsilon_from_rates(fpr, 1 - tpr, delta)
    # Double threshold [l, r] over observed values; positive := the peakier set.
    peaky, wide = (pos, neg) if np.ptp(pos) < np.ptp(neg) else (neg, pos)
    below_p = np.searchsorted(np.sort(peaky), values, side="left")  # count < v
    upto_p = np.searchsorted(np.sort(peaky), values, side="right")  # count <= v
    below_w = np.searchsorted(np.sort(wide), values, side="left")
    upto_w = np.searchsorted(np.sort(wide), values, side="right")
    inside_p = upto_p[None, :] - below_p[:, None]  # [l_i, r_j] for l_i <= r_j
    inside_w = upto_w[None, :] - below_w[:, None]
    valid = np.triu(np.ones((len(values), len(values)), dtype=bool))
    tpr2 = inside_p[valid] / len(peaky)
    fpr2 = inside_w[valid] / len(wide)
    eps_double = _epsilon_from_rates(fpr2, 1 - tpr2, delta)
    return float(min(max(eps_single, eps_double), EPSILON_CAP))


def epsilon_points(epsilon: float, num_models: int) -> float:
    """Points for one example: bucket k = [k/2, (k+1)/2) earns 2^-k up to ceil(ln(N-1))."""
    max_epsilon = math.ceil(math.log(num_models - 1))
    bucket = int(epsilon // 0.5)
    if (bucket + 1) * 0.5 > max_epsilon:
        return 0.0
    return 2.0**-bucket


@dataclass(frozen=True)
class ForgetScore:
    """The challenge score and its parts."""

    score: float
    forget_quality: float
    epsilons: np.ndarray
    ra_ratio: float
    ta_ratio: float


def forget_score(
    unlearned_conf: np.ndarray,
    retrained_conf: np.ndarray,
    ra_ratio: float = 1.0,
    ta_ratio: float = 1.0,
    delta: float = DELTA,
) -> ForgetScore:
    """NeurIPS 2023 Machine Unlearning Challenge score.

    ``unlearned_conf`` and ``retrained_conf`` are N_models x M_forget_examples
    logit-scaled confidences (``logit_scaled_confidence``) under N runs of the method
    and N retrained models. F is the mean of ``epsilon_points`` over examples; the
    final score is F x (RA_unlearned / RA_retrained) x (TA_unlearned / TA_retrained).
    """
    u = np.asarray(unlearned_conf, dtype=np.float64)
    r = np.asarray(retrained_conf, dtype=np.float64)
    if u.ndim != 2 or u.shape != r.shape:
        raise ValueError(f"need two N x M arrays of the same shape, got {u.shape} and {r.shape}")
    n_models = u.shape[0]
    if n_models < 3:
        raise ValueError("the forget score needs at least 3 models per side (ceil(ln(N-1)) > 0)")
    epsilons = np.array([example_epsilon(u[:, j], r[:, j], delta) for j in range(u.shape[1])])
    quality = float(np.mean([epsilon_points(e, n_models) for e in epsilons]))
    return ForgetScore(
        score=quality * ra_ratio * ta_ratio,
        forget_quality=quality,
        epsilons=epsilons,
        ra_ratio=ra_ratio,
        ta_ratio=ta_ratio,
    )
