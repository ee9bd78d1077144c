"""The Compare views: CKA, PCA, confusion matrices, the attack sweep, and one full build."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig
from tests.workers.engine.conftest import synthetic_arrays
from workers.engine import views as V
from workers.engine.forgetting import NetworkPredictor
from workers.engine.nets import build_network

torch.set_num_threads(1)

ARCH = ArchitectureConfig(name="small_cnn", num_classes=3, input_size=(8, 8), width=4)


def _predictor(seed: int) -> NetworkPredictor:
    torch.manual_seed(seed)
    return NetworkPredictor(ARCH, build_network(ARCH).state_dict())


def test_linear_cka_of_a_representation_with_itself_is_one() -> None:
    x = np.random.default_rng(0).normal(size=(40, 7))
    assert V.linear_cka(x, x) == pytest.approx(1.0)
    # Invariant to isotropic scaling and orthogonal rotation (Kornblith et al.).
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(7, 7)))
    assert V.linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    # The Gram form equals the feature form ||Y^T X||^2 / (||X^T X|| ||Y^T Y||).
    y = np.random.default_rng(2).normal(size=(40, 5))
    xc, yc = x - x.mean(0), y - y.mean(0)
    direct = np.linalg.norm(yc.T @ xc) ** 2 / (
        np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    )
    assert V.linear_cka(x, y) == pytest.approx(direct)
    assert 0.0 <= V.linear_cka(x, y) < 1.0


def test_layer_cka_of_a_network_with_itself_is_one_per_layer() -> None:
    model = _predictor(0)
    batch = synthetic_arrays(n=24, size=8)
    same = V.layer_cka(model, {"to_original": _predictor(0)}, batch)
    assert same["layers"] == ["body.0.0", "body.2.0", "body.4.0", "fc"]
    assert same["to_original"] == pytest.approx([1.0] * 4, abs=1e-4)
    other = V.layer_cka(model, {"to_reference": _predictor(1)}, batch)
    assert all(v < 0.9999 for v in other["to_reference"])


def test_pca_projects_to_two_dimensions_on_a_fixed_basis() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 6)) * np.array([5, 2, 1, 0.1, 0.1, 0.1])
    pca = V.pca_fit(features)
    assert pca.components.shape == (2, 6)
    assert pca.project(features).shape == (50, 2)
    assert pca.project(features[:3]).shape == (3, 2)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(2), atol=1e-9)
    assert pca.explained_variance_ratio[0] > pca.explained_variance_ratio[1] > 0
    # Deterministic signs: refitting the same data gives the same picture.
    np.testing.assert_array_equal(V.pca_fit(features).components, pca.components)
    with pytest.raises(ValueError, match="N >= 2"):
        V.pca_fit(features[:1])


def test_confusion_rows_sum_to_class_counts() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 2, 0, 2])
    counts = V.confusion_matrix(predicted, labels, 4)
    assert counts.sum(axis=1).tolist() == [2, 1, 3, 0]
    assert counts.sum(axis=0).tolist() == [2, 2, 2, 0]
    assert np.trace(counts) == 4
    assert V.class_accuracy(predicted, labels, 4) == [
        0.5,
        1.0,
        pytest.approx(2 / 3, abs=1e-4),
        None,
    ]


def test_attack_sweep_and_membership_scores() -> None:
    members = np.array([0.01, 0.02, 0.5])
    nonmembers = np.array([0.1, 0.2, 0.3, 1.0])
    sweep = V.roc_points(members, nonmembers)
    assert sweep["points"][0][:2] == [0.0, 0.0] and sweep["points"][-1][:2] == [1.0, 1.0]
    assert sweep["auc"] == pytest.approx(9 / 12, abs=1e-4)  # 9 of 12 pairs ordered
    scores = V.membership_scores(members, nonmembers)
    assert scores.tolist() == [1.0, 1.0, 0.25]
    many = V.roc_points(np.linspace(0, 1, 900), np.linspace(0.3, 2, 700))
    assert len(many["points"]) <= V.MAX_ROC_POINTS


def test_build_views_is_bounded_json_with_every_part() -> None:
    forget = synthetic_arrays(n=30, size=8, seed=1)
    retain = synthetic_arrays(n=60, size=8, seed=2)
    test = synthetic_arrays(n=700, size=8, seed=3)
    sets = V.ViewSets(forget=forget, retain=retain, test=test)
    views = V.build_views(
        _predictor(0), sets, 3, before=_predictor(1), reference=_predictor(2), top_k=5
    )
    json.dumps(views, allow_nan=False)  # plain JSON, no NaN / inf
    assert views["models"] == ["after", "before", "reference"]
    for split in ("test", "forget"):
        for role in views["models"]:
            rows = np.asarray(views["confusion"][split][role]).sum(axis=1)
            assert rows.tolist() == views["class_counts"][split]
    points = views["feature_map"]["points"]
    assert len(points) == V.MAX_MAP_POINTS
    assert sum(p["forget"] for p in points) == 30
    assert all(len(p["after"]) == 2 and len(p["before"]) == 2 for p in points)
    cka = views["cka"]
    assert len(cka["to_original"]) == len(cka["to_reference"]) == len(cka["layers"]) == 4
    assert cka["batch_size"] == V.MAX_CKA_BATCH
    attack = views["attack"]
    assert set(attack["roc"]) == {"after", "before", "reference"}
    risk = attack["at_risk"]
    assert len(risk) == 5 and {r["sample_id"] for r in risk} <= set(forget.sample_ids)
    assert [r["score"] for r in risk] == sorted((r["score"] for r in risk), reverse=True)
    assert len(json.dumps(views)) < 200_000


def test_class_wise_forgetting_keeps_forgotten_classes_out_of_the_attack() -> None:
    test = synthetic_arrays(n=60, size=8, seed=3)
    forget = test.subset(np.flatnonzero(test.labels == 0))
    sets = V.ViewSets(forget=forget, retain=test, test=test, forget_labels=[0])
    views = V.build_views(_predictor(0), sets, 3)
    assert views["feature_map"]["basis"] == "pca of after" and views["cka"] is None
    assert views["class_counts"]["forget"][1:] == [0, 0]
    assert views["class_accuracy"]["forget"]["after"][1:] == [None, None]
    # Non-members are test samples of classes 1 and 2 only: the sweep's last point is
    # (1, 1) over that many samples, and every point stays in the unit square.
    assert all(0 <= p[0] <= 1 and 0 <= p[1] <= 1 for p in views["attack"]["roc"]["after"])


def test_memoised_predictor_returns_the_same_logits_in_any_order() -> None:
    plain, memo = _predictor(0), _predictor(0)
    memo.memo = True
    arrays = synthetic_arrays(n=40, size=8)
    first = memo.logits(arrays.subset(np.arange(0, 40, 2)))
    again = memo.logits(arrays.subset(np.arange(39, -1, -1)))  # half cached, reversed
    np.testing.assert_allclose(first, plain.logits(arrays.subset(np.arange(0, 40, 2))), atol=1e-5)
    np.testing.assert_allclose(again, plain.logits(arrays)[::-1], atol=1e-5)
    assert len(memo._memo) == 40
    assert memo.logits(arrays.subset([])).shape == (0, 3)
