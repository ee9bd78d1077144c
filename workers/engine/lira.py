"""The strong per-sample membership test: offline LiRA with shadow models (U-LiRA style).

Carlini et al., "Membership Inference Attacks From First Principles" (S&P 2022,
arXiv:2112.03570) score one example by how its logit-scaled confidence
``log p_y - log(1 - p_y)`` under a target model compares with the confidences of
*shadow* models that were, or were not, trained on it. Hayes et al., "Inexact Unlearning
Needs More Careful Evaluations to Avoid a False Sense of Privacy" (2024,
arXiv:2403.01218) use the same test on unlearned models (U-LiRA). We use the offline
variant (OUT shadows only), which is the one that stays sound with a handful of shadows:

* ``train_shadows``: K networks of the version's architecture and recipe, each on a
  random half of its training samples; every sample is IN for exactly ``K // 2`` of them.
  Only the K x N confidences (and the IN mask) are kept, not the networks: every later
  forget set of this version is a subset of these samples, so that is all a test needs.
  The same shadows also score held-out test samples (OUT for all of them).
* ``lira_test``: for each forget sample x, z(x) = (c_target(x) - mean_OUT(x)) /
  (sigma_OUT * sqrt(1 + 1/n_OUT)), with sigma_OUT pooled over every sample (K is small:
  Carlini et al.'s "global variance"). High z: the target is more confident on x than
  models that never saw it — "looks trained on".

The decision compares the forget samples' z with the *same target's* z on test samples
(each scored against a random ``n_OUT``-subset of its shadows, so both are computed
alike): those are the null, data no model saw. That cancels what differs between the
target and the shadows but has nothing to do with x (the target trained on twice the
data, or an unlearning method lowered every confidence). Under "the target never saw the
forget set" forget and test samples are exchangeable, so with the threshold at the
null's 99th percentile (attack FPR 1 %) the number k of forget samples above it follows a
beta-binomial law exactly; and the forget-vs-null AUC has the Mann-Whitney null. The
target fails when either one-sided p-value is below ``alpha / 2`` (Bonferroni): an exact
retrain fails at most ``alpha`` of the time, and a model that still holds the forget set
fails as soon as its tail (TPR at 1 % FPR) or its bulk (AUC) stands out. Forget samples far
*below* the null (a method that over-forgets, which an attacker can also see) are
reported as ``low_tail_share`` but do not fail the test.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine.data import ImageArrays
from workers.engine.errors import EngineError
from workers.engine.evaluation import predict
from workers.engine.metrics import logit_scaled_confidence
from workers.engine.nets import build_network
from workers.engine.training import Callbacks, train_classifier

FORMAT = "expunge.lira_shadows/1"
FPR = 0.01
ALPHA = 0.01
MAX_TEST = 2000  # test samples the shadows score (the null); more only costs inference


@dataclass
class ShadowBank:
    """K shadow models' logit-scaled confidences on a version's samples, and the IN mask."""

    sample_ids: list[str]
    confidences: np.ndarray  # K x N, float32
    members: np.ndarray  # K x N, bool: sample n was in shadow k's training set
    test_ids: list[str]
    test_confidences: np.ndarray  # K x T, float32; every test sample is OUT everywhere
    seconds: float = 0.0
    seed: int = 0

    @property
    def k(self) -> int:
        return int(self.confidences.shape[0])

    def to_bytes(self) -> bytes:
        """One ``.npz`` (no pickle): what the object store keeps per version."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format=np.array(FORMAT),
            sample_ids=np.array(self.sample_ids, dtype=str),
            confidences=self.confidences.astype(np.float32),
            members=self.members,
            test_ids=np.array(self.test_ids, dtype=str),
            test_confidences=self.test_confidences.astype(np.float32),
            seconds=np.array(self.seconds),
            seed=np.array(self.seed),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ShadowBank:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            if str(z["format"]) != FORMAT:
                raise EngineError(f"not a shadow bank of format {FORMAT}: {z['format']}")
            return cls(
                sample_ids=[str(s) for s in z["sample_ids"]],
                confidences=z["confidences"],
                members=z["members"].astype(bool),
                test_ids=[str(s) for s in z["test_ids"]],
                test_confidences=z["test_confidences"],
                seconds=float(z["seconds"]),
                seed=int(z["seed"]),
            )


class _ShadowCallbacks(Callbacks):
    """Maps shadow ``i``'s progress into the whole run's, forwarding stop and logs."""

    def __init__(self, outer: Callbacks, index: int, k: int) -> None:
        self.outer, self.index, self.k = outer, index, k

    def on_progress(self, step: int, total_steps: int) -> None:
        fraction = step / total_steps if total_steps else 1.0
        scale = 10_000
        self.outer.on_progress(int((self.index + fraction) * scale), self.k * scale)

    def should_stop(self) -> bool:
        return self.outer.should_stop()


def membership_masks(n: int, k: int, seed: int) -> np.ndarray:
    """K x N IN mask: each sample IN for exactly ``k // 2`` shadows (LiRA's balanced split)."""
    if k < 2:
        raise EngineError("the strong test needs at least 2 shadow models (1 IN and 1 OUT each)")
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((k, n)), axis=0)  # a random permutation of shadows per sample
    return order < k // 2


def confidences(
    arch: ArchitectureConfig, state_dict: dict[str, torch.Tensor], arrays: ImageArrays
) -> np.ndarray:
    """Logit-scaled confidence of the true label for every sample, float32."""
    net = build_network(arch)
    net.load_state_dict(state_dict)
    logits, labels = predict(net, arrays, arch, 512, "cpu")
    return logit_scaled_confidence(logits, labels).astype(np.float32)


def train_shadows(
    arch: ArchitectureConfig,
    recipe: TrainParams,
    train: ImageArrays,
    test: ImageArrays | None,
    k: int,
    seed: int = 0,
    callbacks: Callbacks | None = None,
    device: str = "cpu",
) -> ShadowBank:
    """Train ``k`` shadows of ``arch`` with ``recipe`` on random halves of ``train``."""
    callbacks = callbacks or Callbacks()
    started = time.perf_counter()
    masks = membership_masks(len(train), k, seed)
    if test is not None and len(test) > MAX_TEST:
        rng = np.random.default_rng(seed)
        test = test.subset(np.sort(rng.choice(len(test), size=MAX_TEST, replace=False)))
    test = test if test is not None else ImageArrays.from_arrays(
        np.zeros((0, *train.images.shape[1:]), np.uint8), np.zeros(0, np.int64), []
    )
    position = {sid: i for i, sid in enumerate(train.sample_ids)}
    conf = np.empty((k, len(train)), np.float32)
    test_conf = np.empty((k, len(test)), np.float32)
    members = np.zeros((k, len(train)), bool)
    for i in range(k):
        callbacks.on_log(f"shadow {i + 1}/{k}: {int(masks[i].sum())} of {len(train)} samples")
        params = recipe.model_copy(update={"seed": recipe.seed + 1000 * (seed + 1) + i})
        if device != "cpu":
            params = params.model_copy(update={"device": device})
        result = train_classifier(
            arch, params, train.subset(masks[i]), callbacks=_ShadowCallbacks(callbacks, i, k)
        )
        # The recipe may subsample (max_train_samples): IN is what it actually trained on.
        members[i, [position[s] for s in result.train_sample_ids]] = True
        conf[i] = confidences(arch, result.state_dict, train)
        if len(test):
            test_conf[i] = confidences(arch, result.state_dict, test)
    return ShadowBank(
        sample_ids=list(train.sample_ids),
        confidences=conf,
        members=members,
        test_ids=list(test.sample_ids),
        test_confidences=test_conf,
        seconds=time.perf_counter() - started,
        seed=seed,
    )


# --------------------------------------------------------------------------- the test


def _pooled_sigma(bank: ShadowBank) -> float:
    """OUT spread around each sample's own OUT mean, pooled over samples (global variance)."""
    squares, dof = 0.0, 0
    out = ~bank.members
    for values, mask in ((bank.confidences, out), (bank.test_confidences, None)):
        if values.shape[1] == 0:
            continue
        v = values.astype(np.float64)
        m = np.ones_like(v, bool) if mask is None else mask
        n = m.sum(axis=0)
        mean = np.where(m, v, 0).sum(axis=0) / np.maximum(n, 1)
        squares += float((np.where(m, v - mean, 0) ** 2).sum())
        dof += int(np.maximum(n - 1, 0).sum())
    if dof == 0:
        raise EngineError("too few OUT shadows to estimate their spread; use more shadow models")
    return max(math.sqrt(squares / dof), 1e-6)


PRIOR_DOF = 4.0


def _z(
    c: np.ndarray, out_values: np.ndarray, out_mask: np.ndarray, sigma: float, local: bool
) -> np.ndarray:
    """(c - mean_OUT) / (s * sqrt(1 + 1/n_OUT)) per column of ``out_values``.

    ``s`` is the pooled spread, or (``local``) each sample's own OUT spread shrunk toward
    it with ``PRIOR_DOF`` pseudo-observations: easy samples vary little across models, so
    a small lift above their OUT mean already says "trained on"."""
    n = out_mask.sum(axis=0)
    mean = np.where(out_mask, out_values, 0).sum(axis=0) / np.maximum(n, 1)
    s: Any = sigma
    if local:
        squares = (np.where(out_mask, out_values - mean, 0) ** 2).sum(axis=0)
        dof = np.maximum(n - 1, 0)
        s = np.sqrt((squares + PRIOR_DOF * sigma**2) / (dof + PRIOR_DOF))
    return (c - mean) / (s * np.sqrt(1.0 + 1.0 / np.maximum(n, 1)))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def betabinom_sf(k: int, m: int, a: float, b: float) -> float:
    """P(X >= k) for X ~ BetaBinomial(m, a, b)."""
    if k <= 0:
        return 1.0
    total = 0.0
    for j in range(k, m + 1):
        total += math.exp(
            math.lgamma(m + 1)
            - math.lgamma(j + 1)
            - math.lgamma(m - j + 1)
            + _log_beta(j + a, m - j + b)
            - _log_beta(a, b)
        )
    return min(1.0, total)


def auc_and_p(positive: np.ndarray, null: np.ndarray) -> tuple[float, float]:
    """ROC AUC of positive vs null (ties count half) and its one-sided Mann-Whitney p-value
    (normal approximation with the tie correction)."""
    m, t = len(positive), len(null)
    pooled = np.concatenate([positive, null])
    order = pooled.argsort(kind="mergesort")
    ranks = np.empty(len(pooled))
    sorted_vals = pooled[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[:m].sum() - m * (m + 1) / 2.0
    auc = u / (m * t)
    n = m + t
    tie = float((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    var = m * t / 12.0 * ((n + 1) - tie)
    if var <= 0:
        return float(auc), 1.0
    z = (u - m * t / 2.0 - 0.5) / math.sqrt(var)  # continuity correction
    return float(auc), float(0.5 * math.erfc(z / math.sqrt(2)))


def lira_test(
    bank: ShadowBank,
    forget_ids: Sequence[str],
    forget_conf: np.ndarray,
    test_ids: Sequence[str],
    test_conf: np.ndarray,
    *,
    alpha: float = ALPHA,
    fpr: float = FPR,
    seed: int = 0,
    local: bool = True,
) -> dict[str, Any]:
    """The verdict on one target: its confidences on the forget and on the test samples.

    Returns the keys the certificate carries (``tpr_at_1pct_fpr``, ``auc``, ``passed``,
    ``k``, ``forget_count``, ...) and the per-sample ``scores`` (z, forget order).
    """
    index = {sid: i for i, sid in enumerate(bank.sample_ids)}
    keep = [j for j, sid in enumerate(forget_ids) if sid in index]
    if not keep:
        raise EngineError("none of the forget samples were among the shadows' training samples")
    cols = np.array([index[forget_ids[j]] for j in keep])
    tindex = {sid: i for i, sid in enumerate(bank.test_ids)}
    tkeep = [j for j, sid in enumerate(test_ids) if sid in tindex]
    if len(tkeep) < 20:
        raise EngineError(
            f"the strong test needs at least 20 test samples the shadows scored, got {len(tkeep)}"
        )
    tcols = np.array([tindex[test_ids[j]] for j in tkeep])
    sigma = _pooled_sigma(bank)

    out_mask = ~bank.members[:, cols]
    z_forget = _z(
        np.asarray(forget_conf, np.float64)[keep],
        bank.confidences[:, cols].astype(np.float64),
        out_mask,
        sigma,
        local,
    )
    # Null: each test sample against a random subset of as many shadows as a forget sample
    # has OUT, so both z's are estimated with the same precision.
    n_out = max(1, int(np.median(out_mask.sum(axis=0))))
    rng = np.random.default_rng(seed)
    test_mask = np.argsort(rng.random((bank.k, len(tcols))), axis=0) < n_out
    z_null = _z(
        np.asarray(test_conf, np.float64)[tkeep],
        bank.test_confidences[:, tcols].astype(np.float64),
        test_mask,
        sigma,
        local,
    )

    t, m = len(z_null), len(z_forget)
    above = int(math.floor(fpr * t))  # null samples strictly above the threshold
    ranked = np.sort(z_null)
    threshold = float(ranked[t - 1 - above])
    hits = int((z_forget > threshold).sum())
    low = float(ranked[above]) if above < t else float(ranked[0])
    p_tail = betabinom_sf(hits, m, above + 1, t - above)
    auc, p_auc = auc_and_p(z_forget, z_null)
    passed = p_tail >= alpha / 2 and p_auc >= alpha / 2
    return {
        "passed": bool(passed),
        "tpr_at_1pct_fpr": hits / m,
        "auc": auc,
        "p_value_tail": p_tail,
        "p_value_auc": p_auc,
        "alpha": alpha,
        "k": bank.k,
        "forget_count": m,
        "null_count": t,
        "flagged_count": hits,
        "threshold_z": threshold,
        "null_fpr": above / t,
        "low_tail_share": float((z_forget < low).mean()),
        "mean_z_forget": float(z_forget.mean()),
        "mean_z_null": float(z_null.mean()),
        "sigma_out": sigma,
        "scores": [float(v) for v in z_forget],
        "score_ids": [forget_ids[j] for j in keep],
    }


def score_predictor(
    bank: ShadowBank, model: Any, forget: ImageArrays, test: ImageArrays, **kwargs: Any
) -> dict[str, Any]:
    """``lira_test`` of anything with ``logits(arrays)`` (a network, an ensemble)."""
    return lira_test(
        bank,
        forget.sample_ids,
        logit_scaled_confidence(model.logits(forget), forget.labels),
        test.sample_ids,
        logit_scaled_confidence(model.logits(test), test.labels),
        **kwargs,
    )
