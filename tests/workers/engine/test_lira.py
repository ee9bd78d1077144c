"""The strong membership test (offline LiRA) on a tiny MLP that must memorise its data.

Labels are random, so what a network knows of a sample it knows only by having trained
on it: the untouched original must be flagged and an exact retrain must pass, on every
seed. The statistics are also checked against their exact null laws.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine import lira
from workers.engine.data import ImageArrays
from workers.engine.errors import EngineError
from workers.engine.forgetting import NetworkPredictor
from workers.engine.training import train_classifier

ARCH = ArchitectureConfig(name="mlp", num_classes=4, input_size=(6, 6), width=64)
RECIPE = TrainParams(epochs=30, batch_size=32, lr=0.1, lr_schedule="cosine", weight_decay=0)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _noise(n: int, prefix: str, seed: int) -> ImageArrays:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 6, 6, 1), dtype=np.uint8)
    labels = rng.integers(0, 4, size=n)
    return ImageArrays(images, labels, [f"{prefix}-{i}" for i in range(n)])


@pytest.fixture(scope="module")
def world() -> dict:
    torch.set_num_threads(1)
    train, test = _noise(300, "train", 1), _noise(200, "test", 2)
    bank = lira.train_shadows(ARCH, RECIPE, train, test, k=4, seed=0)
    return {"train": train, "test": test, "bank": bank}


def test_shadow_bank_is_balanced_and_round_trips(world: dict) -> None:
    bank: lira.ShadowBank = world["bank"]
    assert bank.k == 4 and bank.confidences.shape == (4, 300)
    assert (bank.members.sum(axis=0) == 2).all()  # each sample IN for exactly K // 2
    assert bank.test_confidences.shape == (4, 200)
    # Memorised: IN confidences sit well above OUT ones.
    c = bank.confidences
    assert c[bank.members].mean() > c[~bank.members].mean() + 1.0
    again = lira.ShadowBank.from_bytes(bank.to_bytes())
    assert again.sample_ids == bank.sample_ids and again.test_ids == bank.test_ids
    np.testing.assert_array_equal(again.members, bank.members)
    np.testing.assert_allclose(again.confidences, bank.confidences)
    with pytest.raises(EngineError, match="at least 2"):
        lira.membership_masks(10, 1, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_original_flagged_and_retrain_passes(world: dict, seed: int) -> None:
    train, test, bank = world["train"], world["test"], world["bank"]
    rng = np.random.default_rng(10 + seed)
    chosen = np.zeros(len(train), bool)
    chosen[rng.choice(len(train), size=40, replace=False)] = True
    forget, retain = train.subset(chosen), train.subset(~chosen)
    recipe = RECIPE.model_copy(update={"seed": 50 + seed})
    original = train_classifier(ARCH, recipe, train).state_dict
    retrained = train_classifier(ARCH, recipe, retain).state_dict

    flagged = lira.score_predictor(bank, NetworkPredictor(ARCH, original), forget, test)
    assert not flagged["passed"], flagged
    assert flagged["auc"] > 0.75 and flagged["p_value_auc"] < 1e-4
    assert flagged["forget_count"] == 40 and flagged["k"] == 4
    assert len(flagged["scores"]) == 40 and flagged["score_ids"] == forget.sample_ids

    clean = lira.score_predictor(bank, NetworkPredictor(ARCH, retrained), forget, test)
    assert clean["passed"], clean
    assert clean["tpr_at_1pct_fpr"] < 0.1 and abs(clean["auc"] - 0.5) < 0.2
    assert clean["mean_z_forget"] < flagged["mean_z_forget"]


def test_null_laws() -> None:
    # Beta-binomial tail sums to 1 and matches the binomial in the large-null limit.
    assert lira.betabinom_sf(0, 10, 2, 50) == 1.0
    pmf = [lira.betabinom_sf(j, 10, 2, 50) - lira.betabinom_sf(j + 1, 10, 2, 50) for j in range(11)]
    assert sum(pmf) == pytest.approx(1.0)
    binom = 1 - sum(math.comb(20, j) * 0.01**j * 0.99 ** (20 - j) for j in range(2))
    assert lira.betabinom_sf(2, 20, 1e4, 99e4) == pytest.approx(binom, rel=1e-3)
    # Mann-Whitney: identical draws give AUC ~ 0.5 and a large p; a shift, a tiny p.
    rng = np.random.default_rng(0)
    auc, p = lira.auc_and_p(rng.normal(size=300), rng.normal(size=300))
    assert abs(auc - 0.5) < 0.06 and p > 0.01
    auc, p = lira.auc_and_p(rng.normal(1.0, size=100), rng.normal(size=300))
    assert auc > 0.7 and p < 1e-6


def test_exchangeable_null_fails_at_most_alpha() -> None:
    """Synthetic confidences where forget and test are alike: the false-fail rate is <= alpha."""
    rng = np.random.default_rng(3)
    k, n, t, m = 8, 400, 400, 50
    members = lira.membership_masks(n, k, 0)
    difficulty, tdifficulty = rng.normal(size=n), rng.normal(size=t)
    bank = lira.ShadowBank(
        sample_ids=[f"s{i}" for i in range(n)],
        confidences=(difficulty + rng.normal(size=(k, n)) + 2.0 * members).astype(np.float32),
        members=members,
        test_ids=[f"t{i}" for i in range(t)],
        test_confidences=(tdifficulty + rng.normal(size=(k, t))).astype(np.float32),
    )
    ids = [f"s{i}" for i in range(m)]
    fails = 0
    for trial in range(200):
        noise = np.random.default_rng(100 + trial)
        out = lira.lira_test(
            bank,
            ids,
            difficulty[:m] + noise.normal(size=m),
            bank.test_ids,
            tdifficulty + noise.normal(size=t),
            seed=trial,
        )
        fails += not out["passed"]
    assert fails / 200 <= 0.03
    # The same forget samples 2 (= the IN shift) higher: flagged.
    seen = lira.lira_test(
        bank, ids, difficulty[:m] + 2.0 + rng.normal(size=m), bank.test_ids, tdifficulty
    )
    assert not seen["passed"] and seen["tpr_at_1pct_fpr"] > 0.2


def test_unknown_forget_samples_and_tiny_null_are_explicit(world: dict) -> None:
    bank = world["bank"]
    with pytest.raises(EngineError, match="none of the forget samples"):
        lira.lira_test(bank, ["nope"], np.zeros(1), bank.test_ids, np.zeros(200))
    with pytest.raises(EngineError, match="at least 20 test samples"):
        lira.lira_test(bank, bank.sample_ids[:3], np.zeros(3), bank.test_ids[:5], np.zeros(5))
