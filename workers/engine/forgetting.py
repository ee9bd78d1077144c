"""Evidence that a model forgot: one evaluation shared by jobs, certificates and bench/.

All metrics are fractions in [0, 1] (the benchmark tables print percentages):
UA = 1 - forget accuracy, RA retain accuracy, TA test accuracy, MIA = MIA-efficacy on
the forget set (share judged non-member), plus the loss-threshold attack's ROC AUC
(forget = members vs test = non-members: 0.5 means the attack cannot tell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from contracts.classifier import ArchitectureConfig
from workers.engine import metrics as M
from workers.engine.data import ImageArrays
from workers.engine.evaluation import predict
from workers.engine.nets import build_network
from workers.engine.unlearning.probes import penultimate_features, relearn_resistance


class Predictor(Protocol):
    def logits(self, arrays: ImageArrays) -> np.ndarray: ...


@dataclass
class NetworkPredictor:
    """One network; also the only kind that supports relearning and linear probes."""

    arch: ArchitectureConfig
    state_dict: Mapping[str, torch.Tensor]
    device: str = "cpu"
    batch_size: int = 512
    # Remember logits per sample id: a job scores the same samples several times (the
    # evidence, then the Compare views). Only for ids that name one image each.
    memo: bool = False

    def __post_init__(self) -> None:
        self.net = build_network(self.arch)
        self.net.load_state_dict(dict(self.state_dict), strict=True)
        self.net.to(self.device)
        self._memo: dict[str, np.ndarray] = {}

    def logits(self, arrays: ImageArrays) -> np.ndarray:
        if not self.memo:
            logits, _ = predict(self.net, arrays, self.arch, self.batch_size, self.device)
            return logits
        missing = [i for i, sid in enumerate(arrays.sample_ids) if sid not in self._memo]
        if missing:
            fresh, _ = predict(
                self.net, arrays.subset(missing), self.arch, self.batch_size, self.device
            )
            for i, row in zip(missing, fresh, strict=True):
                self._memo[arrays.sample_ids[i]] = row
        if not len(arrays):
            return np.empty((0, self.arch.num_classes), np.float32)
        return np.stack([self._memo[sid] for sid in arrays.sample_ids])


def _subsample(arrays: ImageArrays, limit: int | None, seed: int) -> ImageArrays:
    if limit is None or len(arrays) <= limit:
        return arrays
    rng = np.random.default_rng(seed)
    return arrays.subset(np.sort(rng.choice(len(arrays), size=limit, replace=False)))


@dataclass
class EvaluationSets:
    """The exact forget / retain / test sets; reused for the reference so gaps are fair."""

    forget: ImageArrays
    retain: ImageArrays
    test: ImageArrays
    forget_labels: list[int] | None = None

    @classmethod
    def build(
        cls,
        forget: ImageArrays,
        retain: ImageArrays,
        test: ImageArrays,
        forget_labels: list[int] | None = None,
        retain_limit: int | None = 10_000,
        seed: int = 0,
    ) -> EvaluationSets:
        if forget_labels:
            # Class-wise: TA is measured on the classes the model should still know.
            keep = ~np.isin(test.labels, forget_labels)
            test = test.subset(np.flatnonzero(keep))
        return cls(forget, _subsample(retain, retain_limit, seed), test, forget_labels)


def evaluate_forgetting(
    model: Predictor,
    sets: EvaluationSets,
    *,
    reference: Predictor | None = None,
    forget_test: ImageArrays | None = None,
    relearn: bool = True,
    probe: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """UA/RA/TA/MIA (+ AUC, divergences, relearn, probe) of ``model`` on ``sets``."""
    f_logits = model.logits(sets.forget)
    r_logits = model.logits(sets.retain)
    t_logits = model.logits(sets.test)
    out: dict[str, Any] = M.ua_ra_ta(
        (f_logits, sets.forget.labels), (r_logits, sets.retain.labels), (t_logits, sets.test.labels)
    )
    out["MIA"] = M.mia_efficacy(
        r_logits,
        sets.retain.labels,
        t_logits,
        sets.test.labels,
        f_logits,
        sets.forget.labels,
        seed=seed,
    )
    out["loss_auc"] = M.loss_threshold_attack_auc(
        M.cross_entropy(f_logits, sets.forget.labels), M.cross_entropy(t_logits, sets.test.labels)
    )
    out["forget_count"] = len(sets.forget)
    out["retain_count"] = len(sets.retain)
    out["test_count"] = len(sets.test)
    if forget_test is not None and len(forget_test):
        out["forget_test_accuracy"] = M.accuracy(model.logits(forget_test), forget_test.labels)
    if reference is not None:
        out["kl_forget"] = M.kl_divergence(f_logits, reference.logits(sets.forget))
        out["js_forget"] = M.js_divergence(f_logits, reference.logits(sets.forget))
        out["js_test"] = M.js_divergence(t_logits, reference.logits(sets.test))
    if isinstance(model, NetworkPredictor):
        if relearn and len(sets.forget) >= 4:
            result = relearn_resistance(
                model.arch, model.state_dict, sets.forget, seed=seed, device=model.device
            )
            out["relearn_accuracy"] = result["forget_accuracy_after"]
        if probe and len(sets.forget) >= 2 and len(np.unique(sets.test.labels)) >= 2:
            out["probe_accuracy"] = _probe(model, sets, seed)
    return out


def _probe(model: NetworkPredictor, sets: EvaluationSets, seed: int) -> float:
    """Can a linear probe on frozen features still name the forgotten samples' labels?

    Trained on features of retain samples (every class the model was trained on,
    forgotten ones included via a held-out half of the forget set) and scored on the other
    half of the forget set: high accuracy means the features still hold what the head lost.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(sets.forget))
    half = max(1, len(order) // 2)
    probe_train = sets.forget.subset(np.sort(order[:half]))
    probe_eval = sets.forget.subset(np.sort(order[half:])) if len(order) > half else probe_train
    retain = _subsample(sets.retain, 2000, seed)
    feats = [
        penultimate_features(model.arch, model.state_dict, a, device=model.device)
        for a in (retain, probe_train, probe_eval)
    ]
    labels_train = np.concatenate([retain.labels, probe_train.labels])
    if len(np.unique(labels_train)) < 2:
        return float("nan")
    return M.linear_probe_accuracy(
        np.concatenate([feats[0], feats[1]]), labels_train, feats[2], probe_eval.labels, seed=seed
    )


def comparison(metrics: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, float]:
    """Avg. Gap and per-metric differences to the retrained reference."""
    out = {"avg_gap": M.avg_gap(metrics, reference)}
    for key in (*M.GAP_KEYS, "relearn_accuracy", "probe_accuracy", "loss_auc"):
        if key in metrics and key in reference:
            out[f"delta_{key}"] = float(metrics[key]) - float(reference[key])
    return out
