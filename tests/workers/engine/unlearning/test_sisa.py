"""SISA: exactness is checked bit for bit against training from scratch without the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contracts.classifier import TrainParams
from tests.workers.engine.unlearning.conftest import ARCH, blobs
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.training import Callbacks
from workers.engine.unlearning.sisa import SisaEnsemble, assign, train_sisa, unlearn_sisa

RECIPE = TrainParams(epochs=2, batch_size=16, lr=3e-3, optimizer="adam", weight_decay=0.0)


def test_assignment_is_stable_and_spread() -> None:
    ids = [f"s{i}" for i in range(400)]
    first = [assign(s, seed=3, shards=4, slices=2) for s in ids]
    assert first == [assign(s, seed=3, shards=4, slices=2) for s in ids]
    counts = np.bincount([shard for shard, _ in first], minlength=4)
    assert counts.min() > 60  # roughly 100 each
    assert first != [assign(s, seed=4, shards=4, slices=2) for s in ids]


def test_unlearned_shards_equal_shards_trained_without_the_samples() -> None:
    train = blobs(160, seed=11, prefix="sisa")
    test = blobs(80, seed=12, prefix="sisa-test")
    state = train_sisa(ARCH, RECIPE, train, shards=3, slices=3, seed=5)
    ensemble_acc = float(np.mean(SisaEnsemble(state).predict(test) == test.labels))
    assert ensemble_acc > 0.8

    # Forget samples that sit in the last slice of their shard, plus one in slice 0 of
    # another shard (if any), so both cheap and full shard retrains are exercised.
    by_slice = {sid: assign(sid, 5, 3, 3) for sid in train.sample_ids}
    late = [s for s, (shard, k) in by_slice.items() if shard == 0 and k == 2][:2]
    early = [s for s, (shard, k) in by_slice.items() if shard == 1 and k == 0][:1]
    forget = late + early
    report = unlearn_sisa(state, train, forget)
    assert report.affected_shards == [0, 1]
    assert report.stages_retrained == 1 + 3  # shard 0 from slice 2, shard 1 from slice 0
    assert report.stage_fraction == pytest.approx(4 / 9)

    keep = [i for i, s in enumerate(train.sample_ids) if s not in set(forget)]
    scratch = train_sisa(ARCH, RECIPE, train.subset(keep), shards=3, slices=3, seed=5)
    for shard in range(3):
        for k in range(3):
            got, want = report.state.checkpoints[shard][k], scratch.checkpoints[shard][k]
            assert got.keys() == want.keys()
            assert all(torch.equal(got[key], want[key]) for key in want), (shard, k)
    # The untouched shard was not retrained at all: same tensors as before.
    assert report.state.checkpoints[2] is not state.checkpoints[2]
    assert all(report.state.checkpoints[2][k] is state.checkpoints[2][k] for k in range(3))
    assert not set(forget) & report.state.assignment.keys()

    ensemble = SisaEnsemble(report.state)
    votes = ensemble.predict(test, aggregation="vote")
    assert votes.shape == (len(test),)
    probs = ensemble.probabilities(test)
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert ensemble.logits(test).shape == (len(test), ARCH.num_classes)


def test_unknown_ids_and_cancellation() -> None:
    train = blobs(48, seed=13, prefix="sisa-small")
    state = train_sisa(ARCH, RECIPE.model_copy(update={"epochs": 1}), train, 2, 2)
    with pytest.raises(EngineError, match="not in this SISA ensemble"):
        unlearn_sisa(state, train, ["nobody"])

    class Stop(Callbacks):
        def should_stop(self) -> bool:
            return True

    with pytest.raises(TrainingStopped):
        train_sisa(ARCH, RECIPE, train, 2, 2, callbacks=Stop())
