"""What the dashboard's Compare views show, computed once when a model is evaluated.

An evaluation stores these so the views open instantly instead of re-running models:
class-wise accuracy, confusion matrices, a 2-D map of the feature space, per-layer
similarity (linear CKA) and the loss-threshold attack's sweep with the forget samples
most at risk. "after" is the evaluated (unlearned) model, "before" the original it came
from and "reference" the retrained model; each part is computed for the models given.

Every output is bounded in size (a fixed sample of points, a capped number of classes
for the confusion matrices, a capped number of ROC points) and made of plain JSON types.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import roc_curve

from workers.engine import metrics as M
from workers.engine.data import ImageArrays, to_tensor
from workers.engine.forgetting import NetworkPredictor, Predictor

VIEWS_FORMAT = 1
# Beyond this many classes a C x C matrix stops being readable (and gets large).
MAX_CONFUSION_CLASSES = 50
MAX_MAP_POINTS = 500
MAX_CKA_BATCH = 256
MAX_ROC_POINTS = 101
MAX_RETAIN = 2000
TOP_AT_RISK = 12
ROLES = ("after", "before", "reference")


@dataclass
class ViewSets:
    """forget / retain / the whole test split (forgotten classes included).

    ``forget_labels`` names forgotten classes; the attack then uses only the test samples
    of the other classes as non-members, as ``evaluate_forgetting`` does.
    """

    forget: ImageArrays
    retain: ImageArrays
    test: ImageArrays
    forget_labels: list[int] | None = None


def _r(x: float) -> float | None:
    """4 decimals are plenty for a chart; NaN / inf become null so the JSON stays valid."""
    value = float(x)
    return round(value, 4) if math.isfinite(value) else None


# --------------------------------------------------------------------------- arrays only


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted]; row c sums to the number of samples of class c."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


def class_accuracy(
    predicted: np.ndarray, labels: np.ndarray, num_classes: int
) -> list[float | None]:
    """Accuracy per class; ``None`` for a class with no sample in the set."""
    out: list[float | None] = []
    for c in range(num_classes):
        mask = labels == c
        out.append(_r((predicted[mask] == c).mean()) if mask.any() else None)
    return out


@dataclass(frozen=True)
class Pca:
    """A 2-D (or k-D) linear projection fitted once and applied to any feature matrix."""

    mean: np.ndarray
    components: np.ndarray  # k x D, orthonormal rows
    explained_variance_ratio: np.ndarray

    def project(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float64) - self.mean) @ self.components.T


def pca_fit(features: np.ndarray, k: int = 2) -> Pca:
    """PCA by SVD of the centred data; each axis' sign fixed so its largest loading is
    positive, so the same data always gives the same picture."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"PCA needs an N x D matrix with N >= 2, got shape {x.shape}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    components = vt[:k].copy()
    for i in range(k):
        if components[i, np.argmax(np.abs(components[i]))] < 0:
            components[i] *= -1
    variance = s**2
    total = variance.sum()
    ratio = variance[:k] / total if total > 0 else np.zeros(k)
    if components.shape[0] < 2:  # a single sample direction: pad with a zero axis
        components = np.vstack([components, np.zeros((2 - k, x.shape[1]))])
        ratio = np.concatenate([ratio, np.zeros(2 - k)])
    return Pca(mean, components, ratio)


def _centered_gram(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    gram = x @ x.T
    n = len(gram)
    h = np.eye(n) - 1.0 / n
    return h @ gram @ h


def cka_from_grams(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Linear CKA from two centred Gram matrices: <K, L>_F / (||K||_F ||L||_F)."""
    denominator = np.linalg.norm(k) * np.linalg.norm(l)
    if denominator == 0:
        return float("nan")
    return float(np.sum(k * l) / denominator)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019) of two representations of the same n samples.

    Computed through n x n Gram matrices, which equals ||Y^T X||_F^2 / (||X^T X||_F
    ||Y^T Y||_F) on centred features and stays cheap when the feature width is large.
    """
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same samples on both sides: {len(x)} vs {len(y)}")
    return cka_from_grams(_centered_gram(x), _centered_gram(y))


def roc_points(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> dict[str, Any]:
    """The loss-threshold attack ("loss <= t means member") swept over every t.

    Returns at most ``MAX_ROC_POINTS`` points [fpr, tpr, t] (t = null at the start of the
    curve, where no sample is called a member) and the AUC.
    """
    members = np.asarray(member_losses, np.float64)
    nonmembers = np.asarray(nonmember_losses, np.float64)
    y = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    fpr, tpr, thresholds = roc_curve(y, -np.concatenate([members, nonmembers]))
    if len(fpr) > MAX_ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(int))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    points = [
        [_r(f), _r(t), None if not np.isfinite(th) else _r(-th)]
        for f, t, th in zip(fpr, tpr, thresholds, strict=True)
    ]
    return {"points": points, "auc": _r(M.loss_threshold_attack_auc(members, nonmembers))}


def membership_scores(member_losses: np.ndarray, nonmember_losses: np.ndarray) -> np.ndarray:
    """Per member: the share of non-members whose loss is higher (1: looks most like
    training data; about 0.5: indistinguishable from unseen data)."""
    ordered = np.sort(np.asarray(nonmember_losses, np.float64))
    at_or_below = np.searchsorted(ordered, np.asarray(member_losses, np.float64), side="right")
    return 1.0 - at_or_below / max(len(ordered), 1)


# --------------------------------------------------------------------------- networks


def _view_layers(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and linear layer in definition order (shortcut projections left out:
    they are a side path, not a stage of the representation)."""
    return [
        (name, module)
        for name, module in net.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear) and "downsample" not in name
    ]


@contextmanager
def _recording_grams(net: nn.Module) -> Iterator[dict[str, np.ndarray]]:
    grams: dict[str, np.ndarray] = {}
    handles = []
    for name, module in _view_layers(net):

        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, name: str = name) -> None:
            grams[name] = _centered_gram(out.detach().float().cpu().flatten(1).numpy())

        handles.append(module.register_forward_hook(hook))
    try:
        yield grams
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def layer_grams(predictor: NetworkPredictor, arrays: ImageArrays) -> dict[str, np.ndarray]:
    """Centred Gram matrix of every view layer's output on one batch (n <= 256)."""
    net = predictor.net
    was_training = net.training
    net.eval()
    try:
        x = to_tensor(arrays.images, predictor.arch).to(predictor.device)
        with _recording_grams(net) as grams:
            net(x)
    finally:
        net.train(was_training)
    return dict(grams)


@torch.no_grad()
def penultimate(predictor: NetworkPredictor, arrays: ImageArrays, batch: int = 256) -> np.ndarray:
    net = predictor.net
    was_training = net.training
    net.eval()
    try:
        out = [
            net.features(
                to_tensor(arrays.images[i : i + batch], predictor.arch).to(predictor.device)
            )
            .float()
            .cpu()
            .numpy()
            for i in range(0, len(arrays), batch)
        ]
    finally:
        net.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, net.feature_dim), np.float32)


@torch.no_grad()
def _head_predictions(predictor: NetworkPredictor, features: np.ndarray) -> np.ndarray:
    head = predictor.net.head
    return head(torch.from_numpy(features).to(predictor.device)).argmax(1).cpu().numpy()


def layer_cka(
    model: NetworkPredictor, others: Mapping[str, NetworkPredictor], arrays: ImageArrays
) -> dict[str, Any]:
    """CKA per layer between ``model`` and each of ``others`` on the same batch."""
    mine = layer_grams(model, arrays)
    layers = list(mine)
    out: dict[str, Any] = {"layers": layers, "batch_size": len(arrays)}
    for role, other in others.items():
        theirs = layer_grams(other, arrays)
        out[role] = [
            _r(cka_from_grams(mine[n], theirs[n])) if n in theirs else None for n in layers
        ]
    return out


# --------------------------------------------------------------------------- the views


def _seeded_pick(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _point_sample(sets: ViewSets, seed: int) -> tuple[ImageArrays, np.ndarray]:
    """Up to ``MAX_MAP_POINTS`` points: forget samples (at most half) and test samples."""
    rng = np.random.default_rng(seed)
    forget_idx = _seeded_pick(len(sets.forget), MAX_MAP_POINTS // 2, rng)
    test_idx = _seeded_pick(len(sets.test), MAX_MAP_POINTS - len(forget_idx), rng)
    forget, test = sets.forget.subset(forget_idx), sets.test.subset(test_idx)
    arrays = ImageArrays(
        images=np.concatenate([forget.images, test.images]),
        labels=np.concatenate([forget.labels, test.labels]),
        sample_ids=forget.sample_ids + test.sample_ids,
    )
    is_forget = np.concatenate([np.ones(len(forget), bool), np.zeros(len(test), bool)])
    return arrays, is_forget


def _cka_batch(points: ImageArrays, seed: int) -> ImageArrays:
    """A fixed batch for CKA: forget and test points in the map sample's proportions."""
    rng = np.random.default_rng(seed + 1)
    return points.subset(_seeded_pick(len(points), MAX_CKA_BATCH, rng))


def build_views(
    after: Predictor,
    sets: ViewSets,
    num_classes: int,
    *,
    before: Predictor | None = None,
    reference: Predictor | None = None,
    seed: int = 0,
    top_k: int = TOP_AT_RISK,
) -> dict[str, Any]:
    """Every Compare view for ``after`` (and ``before`` / ``reference`` where given)."""
    if len(sets.forget) == 0 or len(sets.test) == 0:
        raise ValueError("the views need a non-empty forget set and test set")
    models = {
        role: m
        for role, m in (("after", after), ("before", before), ("reference", reference))
        if m is not None
    }
    rng = np.random.default_rng(seed)
    retain = sets.retain.subset(_seeded_pick(len(sets.retain), MAX_RETAIN, rng))
    named = {"forget": sets.forget, "retain": retain, "test": sets.test}
    logits = {
        role: {split: m.logits(a) for split, a in named.items() if len(a)}
        for role, m in models.items()
    }
    views: dict[str, Any] = {
        "format": VIEWS_FORMAT,
        "num_classes": num_classes,
        "models": list(models),
        "forget_labels": sets.forget_labels,
        "counts": {split: len(a) for split, a in named.items()},
        "class_counts": {
            split: np.bincount(a.labels, minlength=num_classes)[:num_classes].tolist()
            for split, a in named.items()
        },
        "class_accuracy": {
            split: {
                role: class_accuracy(logits[role][split].argmax(1), a.labels, num_classes)
                for role in models
            }
            for split, a in named.items()
            if len(a)
        },
    }
    if num_classes <= MAX_CONFUSION_CLASSES:
        views["confusion"] = {
            split: {
                role: confusion_matrix(
                    logits[role][split].argmax(1), named[split].labels, num_classes
                ).tolist()
                for role in models
            }
            for split in ("test", "forget")
        }
    else:
        views["confusion"] = None
    views["attack"] = _attack(logits, sets, top_k)
    networks = {r: m for r, m in models.items() if isinstance(m, NetworkPredictor)}
    if "after" in networks:
        points, is_forget = _point_sample(sets, seed)
        views["feature_map"] = _feature_map(networks, points, is_forget)
        others = {
            name: networks[role]
            for name, role in (("to_original", "before"), ("to_reference", "reference"))
            if role in networks
        }
        views["cka"] = (
            layer_cka(networks["after"], others, _cka_batch(points, seed)) if others else None
        )
    else:  # e.g. a SISA ensemble: no single feature space to map
        views["feature_map"] = None
        views["cka"] = None
    return views


def _attack(logits: dict[str, dict[str, np.ndarray]], sets: ViewSets, top_k: int) -> dict[str, Any]:
    keep = (
        ~np.isin(sets.test.labels, sets.forget_labels)
        if sets.forget_labels
        else np.ones(len(sets.test), bool)
    )
    out: dict[str, Any] = {"members": "forget", "nonmembers": "test", "roc": {}, "auc": {}}
    if not keep.any():
        out["at_risk"] = []
        return out
    losses: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for role, by_split in logits.items():
        member = M.cross_entropy(by_split["forget"], sets.forget.labels)
        nonmember = M.cross_entropy(by_split["test"][keep], sets.test.labels[keep])
        losses[role] = (member, nonmember)
        sweep = roc_points(member, nonmember)
        out["roc"][role] = sweep["points"]
        out["auc"][role] = sweep["auc"]
    member, nonmember = losses["after"]
    scores = membership_scores(member, nonmember)
    before = membership_scores(*losses["before"]) if "before" in losses else None
    predicted = logits["after"]["forget"].argmax(1)
    order = np.lexsort((member, -scores))[:top_k]
    out["at_risk"] = [
        {
            "sample_id": sets.forget.sample_ids[i],
            "label": int(sets.forget.labels[i]),
            "predicted": int(predicted[i]),
            "loss": _r(member[i]),
            "score": _r(scores[i]),
            "score_before": None if before is None else _r(before[i]),
        }
        for i in order
    ]
    return out


def _feature_map(
    networks: Mapping[str, NetworkPredictor], points: ImageArrays, is_forget: np.ndarray
) -> dict[str, Any]:
    """Penultimate features of the fixed points under "before" and "after", projected on
    one PCA basis fitted to both together, so positions are comparable across the two."""
    roles = [r for r in ("before", "after") if r in networks]
    features = {r: penultimate(networks[r], points) for r in roles}
    pca = pca_fit(np.concatenate([features[r] for r in roles]))
    coords = {r: pca.project(features[r]) for r in roles}
    predicted = {r: _head_predictions(networks[r], features[r]) for r in roles}
    return {
        "basis": "pca of " + " + ".join(roles),
        "explained_variance_ratio": [_r(v) for v in pca.explained_variance_ratio],
        "points": [
            {
                "sample_id": points.sample_ids[i],
                "label": int(points.labels[i]),
                "forget": bool(is_forget[i]),
                **{r: [_r(coords[r][i, 0]), _r(coords[r][i, 1])] for r in roles},
                **{f"predicted_{r}": int(predicted[r][i]) for r in roles},
            }
            for i in range(len(points))
        ],
    }
