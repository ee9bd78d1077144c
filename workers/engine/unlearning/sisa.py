"""SISA: Sharded, Isolated, Sliced, Aggregated training, for exact unlearning.

Bourtoule et al. split the training set into disjoint shards, train one model per shard,
and within a shard feed the data slice by slice, saving the weights after each slice.
Forgetting a sample then means retraining one shard from the checkpoint taken just
before the sample's slice, not the whole model: exact, and cheaper by up to shards x
slices. Prediction aggregates the shard models.

Exactness here is concrete: the retrained shard is bit-for-bit the shard that
``train_sisa`` would build from scratch without the forgotten samples (on CPU), because

* a sample's shard and slice depend only on ``(seed, sample_id)`` (a keyed hash), so
  removing samples never moves the others;
* every slice stage is a deterministic ``train_classifier`` run whose seed depends only
  on (seed, shard, slice), on the cumulative slices in the training set's order.

Not a registered ``UnlearningMethod``: it needs its own training (the shard models and
checkpoints), so the runner calls ``train_sisa`` / ``unlearn_sisa`` directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from contracts.classifier import ArchitectureConfig, TrainParams
from workers.engine.data import ImageArrays
from workers.engine.errors import EngineError, TrainingStopped
from workers.engine.nets import build_network
from workers.engine.training import Callbacks, train_classifier
from workers.engine.unlearning import common as C

StateDict = dict[str, torch.Tensor]


def assign(sample_id: str, seed: int, shards: int, slices: int) -> tuple[int, int]:
    """(shard, slice) of a sample: a keyed hash, so it ignores every other sample."""
    digest = hashlib.sha256(f"{seed}\x00{sample_id}".encode()).digest()
    h = int.from_bytes(digest[:8], "big")
    return h % shards, (h // shards) % slices


@dataclass
class SisaState:
    """Everything needed to predict with, and unlearn from, a SISA ensemble.

    ``checkpoints[shard][k]`` are the shard's weights after training on slices 0..k;
    the last one is the shard model. Training images are not kept here: ``unlearn_sisa``
    takes the training set again, as the runner holds it in the dataset store.
    """

    arch: ArchitectureConfig
    train_params: TrainParams
    shards: int
    slices: int
    seed: int
    assignment: dict[str, tuple[int, int]]
    checkpoints: list[list[StateDict]]
    stages_trained: int = 0
    log: list[str] = field(default_factory=list)

    def shard_models(self) -> list[StateDict]:
        return [shard[-1] for shard in self.checkpoints]


def _stage_seed(seed: int, shard: int, k: int) -> int:
    return (seed * 1_000_003 + shard * 1_009 + k) % (2**32)


class _StageProgress(Callbacks):
    """Maps one stage's progress into the whole run's and forwards everything else."""

    def __init__(self, outer: Callbacks, stage: int, stages: int) -> None:
        self.outer, self.stage, self.stages = outer, stage, stages

    def on_progress(self, step: int, total_steps: int) -> None:
        fraction = step / max(total_steps, 1)
        self.outer.on_progress(int((self.stage + fraction) * 1000), self.stages * 1000)

    def on_log(self, message: str) -> None:
        self.outer.on_log(message)

    def on_metric(self, name: str, value: float, step: int) -> None:
        self.outer.on_metric(name, value, step)

    def should_stop(self) -> bool:
        return self.outer.should_stop()

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        # Stages are short and each ends in a kept checkpoint; mid-stage resume states
        # are not worth storing per shard.
        return None


def _initial_weights(arch: ArchitectureConfig, seed: int) -> StateDict:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return C.cpu_state_dict(build_network(arch))


def _train_shard(
    *,
    arch: ArchitectureConfig,
    params: TrainParams,
    train: ImageArrays,
    positions: np.ndarray,
    slice_of: np.ndarray,
    shard: int,
    slices: int,
    seed: int,
    start: int,
    previous: list[StateDict],
    callbacks: Callbacks,
    stage_offset: int,
    stages: int,
) -> tuple[list[StateDict], int]:
    """Train slices ``start``..end of one shard, continuing from ``previous[start - 1]``."""
    checkpoints = list(previous[:start])
    weights = checkpoints[-1] if checkpoints else None
    trained = 0
    for k in range(start, slices):
        if callbacks.should_stop():
            raise TrainingStopped(f"SISA stopped before shard {shard} slice {k}")
        stage_seed = _stage_seed(seed, shard, k)
        cumulative = positions[slice_of <= k]  # training-set order, so it is canonical
        if len(cumulative) == 0:
            weights = weights if weights is not None else _initial_weights(arch, stage_seed)
        else:
            stage_params = params.model_copy(update={"seed": stage_seed})
            progress = _StageProgress(callbacks, stage_offset + trained, stages)
            result = train_classifier(
                arch,
                stage_params,
                train.subset(cumulative),
                callbacks=progress,
                init_state_dict=weights,
            )
            weights = result.state_dict
            trained += 1
        checkpoints.append(weights)
    return checkpoints, trained


def _layout(
    train: ImageArrays, assignment: dict[str, tuple[int, int]], shard: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in training-set order) of a shard's samples, and each one's slice."""
    positions, slice_of = [], []
    for i, sid in enumerate(train.sample_ids):
        s, k = assignment[sid]
        if s == shard:
            positions.append(i)
            slice_of.append(k)
    return np.asarray(positions, dtype=np.int64), np.asarray(slice_of, dtype=np.int64)


def train_sisa(
    arch: ArchitectureConfig,
    train_params: TrainParams,
    train: ImageArrays,
    shards: int,
    slices: int,
    callbacks: Callbacks | None = None,
    seed: int = 0,
) -> SisaState:
    """Train ``shards`` shard models, each incrementally over ``slices`` slices.

    Every slice stage trains ``train_params.epochs`` epochs on the slices seen so far,
    starting from the previous stage's weights.
    """
    if shards < 1 or slices < 1:
        raise EngineError("SISA needs at least one shard and one slice")
    if len(set(train.sample_ids)) != len(train):
        raise EngineError("SISA needs unique sample ids: they decide shard and slice")
    callbacks = callbacks or Callbacks()
    assignment = {sid: assign(sid, seed, shards, slices) for sid in train.sample_ids}
    checkpoints: list[list[StateDict]] = []
    stages = shards * slices
    done = 0
    for shard in range(shards):
        positions, slice_of = _layout(train, assignment, shard)
        shard_checkpoints, trained = _train_shard(
            arch=arch,
            params=train_params,
            train=train,
            positions=positions,
            slice_of=slice_of,
            shard=shard,
            slices=slices,
            seed=seed,
            start=0,
            previous=[],
            callbacks=callbacks,
            stage_offset=done,
            stages=stages,
        )
        checkpoints.append(shard_checkpoints)
        done += trained
        callbacks.on_log(f"sisa: shard {shard + 1}/{shards} trained on {len(positions)} samples")
    return SisaState(
        arch=arch,
        train_params=train_params,
        shards=shards,
        slices=slices,
        seed=seed,
        assignment=assignment,
        checkpoints=checkpoints,
        stages_trained=done,
        log=[f"sisa: trained {shards} shard(s) x {slices} slice(s) on {len(train)} samples"],
    )


@dataclass
class SisaUnlearnReport:
    """What unlearning cost, against the full retrain SISA was designed to avoid."""

    state: SisaState
    affected_shards: list[int]
    stages_retrained: int
    stages_total: int
    samples_removed: int

    @property
    def stage_fraction(self) -> float:
        return self.stages_retrained / max(self.stages_total, 1)


def unlearn_sisa(
    state: SisaState,
    train: ImageArrays,
    forget_sample_ids: Iterable[str],
    callbacks: Callbacks | None = None,
) -> SisaUnlearnReport:
    """Forget samples exactly: retrain only their shards, from before their first slice.

    ``train`` is the training set the state was built on (with or without the forgotten
    samples); unknown forget ids are an error, since silently ignoring one would certify
    forgetting of data the ensemble never held.
    """
    callbacks = callbacks or Callbacks()
    forget = set(forget_sample_ids)
    unknown = sorted(forget - state.assignment.keys())
    if unknown:
        raise EngineError(
            f"{len(unknown)} sample id(s) are not in this SISA ensemble, e.g. {unknown[:3]}"
        )
    keep = np.array([sid not in forget for sid in train.sample_ids], dtype=bool)
    remaining = train.subset(keep)
    missing = (state.assignment.keys() - forget) - set(remaining.sample_ids)
    if missing:
        raise EngineError(
            f"the training set given lacks {len(missing)} sample(s) the ensemble was trained on"
        )
    first_slice: dict[int, int] = {}
    for sid in forget:
        shard, k = state.assignment[sid]
        first_slice[shard] = min(k, first_slice.get(shard, k))
    stages = sum(state.slices - k for k in first_slice.values())
    checkpoints = [list(shard) for shard in state.checkpoints]
    done = 0
    for shard in sorted(first_slice):
        start = first_slice[shard]
        positions, slice_of = _layout(remaining, state.assignment, shard)
        checkpoints[shard], trained = _train_shard(
            arch=state.arch,
            params=state.train_params,
            train=remaining,
            positions=positions,
            slice_of=slice_of,
            shard=shard,
            slices=state.slices,
            seed=state.seed,
            start=start,
            previous=state.checkpoints[shard],
            callbacks=callbacks,
            stage_offset=done,
            stages=stages,
        )
        done += trained
        callbacks.on_log(
            f"sisa: shard {shard} retrained from slice {start} ({state.slices - start} stage(s))"
        )
    assignment = {sid: a for sid, a in state.assignment.items() if sid not in forget}
    new_state = replace(
        state,
        assignment=assignment,
        checkpoints=checkpoints,
        stages_trained=state.stages_trained + done,
        log=[*state.log, f"sisa: forgot {len(forget)} sample(s) in shards {sorted(first_slice)}"],
    )
    return SisaUnlearnReport(
        state=new_state,
        affected_shards=sorted(first_slice),
        stages_retrained=done,
        stages_total=state.shards * state.slices,
        samples_removed=len(forget),
    )


class SisaEnsemble:
    """Aggregated prediction of the shard models (mean of softmax, or majority vote)."""

    def __init__(self, state: SisaState, device: str = "cpu") -> None:
        self.arch = state.arch
        self.device = C.resolve_device(device)
        self.nets = [
            C.load_network(state.arch, weights, self.device).eval()
            for weights in state.shard_models()
        ]

    def probabilities(self, arrays: ImageArrays, batch_size: int = 512) -> np.ndarray:
        """Mean over shards of the softmax (N x num_classes)."""
        total = np.zeros((len(arrays), self.arch.num_classes), dtype=np.float64)
        for net in self.nets:
            logits = C.logits_of(net, arrays, self.arch, self.device, batch_size)
            total += torch.softmax(logits.double(), dim=1).numpy()
        return total / len(self.nets)

    def logits(self, arrays: ImageArrays) -> np.ndarray:
        """log of the mean probabilities, so the array metrics can take the ensemble."""
        return np.log(np.clip(self.probabilities(arrays), 1e-45, None))

    def predict(
        self, arrays: ImageArrays, aggregation: Literal["mean", "vote"] = "mean"
    ) -> np.ndarray:
        if aggregation == "mean":
            return self.probabilities(arrays).argmax(axis=1)
        votes = np.zeros((len(arrays), self.arch.num_classes), dtype=np.int64)
        for net in self.nets:
            pred = C.logits_of(net, arrays, self.arch, self.device).argmax(dim=1).numpy()
            votes[np.arange(len(arrays)), pred] += 1
        # Ties go to the lowest class index (argmax), which is deterministic.
        return votes.argmax(axis=1)
