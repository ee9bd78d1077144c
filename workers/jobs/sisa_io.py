"""SISA ensembles as model versions: shard models in the checkpoint, every per-slice
checkpoint in a ``sisa_slices`` file beside it, assignments recomputed from sample ids."""

from __future__ import annotations

from typing import Any

import numpy as np

from contracts.classifier import ArchitectureConfig, TrainParams
from models import ModelVersion
from workers.context import JobContext
from workers.engine.data import ImageArrays
from workers.engine.training import Callbacks
from workers.engine.unlearning.sisa import SisaEnsemble, SisaState, assign, train_sisa
from workers.jobs.publish import load_version_file

SLICES_FILE = "sisa_slices"


def pack(state: SisaState) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    shards = {
        f"shard{i}.{k}": v
        for i, weights in enumerate(state.shard_models())
        for k, v in weights.items()
    }
    slices = {
        f"shard{i}.slice{s}.{k}": v
        for i, shard in enumerate(state.checkpoints)
        for s, weights in enumerate(shard)
        for k, v in weights.items()
    }
    return shards, {SLICES_FILE: slices}


def unpack(
    arch: ArchitectureConfig,
    params: TrainParams,
    spec: dict[str, Any],
    slices_tensors: dict[str, Any],
    trained_ids: list[str],
) -> SisaState:
    shards, n_slices, seed = int(spec["shards"]), int(spec["slices"]), int(spec["seed"])
    checkpoints: list[list[dict[str, Any]]] = [[{} for _ in range(n_slices)] for _ in range(shards)]
    for key, tensor in slices_tensors.items():
        shard_part, slice_part, name = key.split(".", 2)
        checkpoints[int(shard_part[5:])][int(slice_part[5:])][name] = tensor
    return SisaState(
        arch=arch,
        train_params=params,
        shards=shards,
        slices=n_slices,
        seed=seed,
        assignment={sid: assign(sid, seed, shards, n_slices) for sid in trained_ids},
        checkpoints=checkpoints,
    )


def load_state(
    ctx: JobContext, version: ModelVersion, arch: ArchitectureConfig, trained_ids: list[str]
) -> SisaState:
    params = TrainParams.model_validate(version.config["train_params"])
    key = version.checkpoint_key.rsplit("/", 1)[0] + f"/{SLICES_FILE}.safetensors"
    return unpack(arch, params, version.config["sisa"], load_version_file(ctx, key), trained_ids)


def ensemble_from_checkpoint(
    arch: ArchitectureConfig, spec: dict[str, Any], state_dict: dict[str, Any], device: str = "cpu"
) -> SisaEnsemble:
    """A predictor from the version checkpoint alone (shard models only)."""
    shards = int(spec["shards"])
    per_shard: list[dict[str, Any]] = [{} for _ in range(shards)]
    for key, tensor in state_dict.items():
        shard_part, name = key.split(".", 1)
        per_shard[int(shard_part[5:])][name] = tensor
    state = SisaState(
        arch=arch,
        train_params=TrainParams(),
        shards=shards,
        slices=1,
        seed=int(spec["seed"]),
        assignment={},
        checkpoints=[[w] for w in per_shard],
    )
    return SisaEnsemble(state, device=device)


def train(
    ctx: JobContext,
    arch: ArchitectureConfig,
    params: TrainParams,
    train_arrays: ImageArrays,
    test: ImageArrays | None,
    spec: dict[str, Any],
    callbacks: Callbacks,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, float], list[str]]:
    if params.max_train_samples is not None and len(train_arrays) > params.max_train_samples:
        rng = np.random.default_rng(params.seed)
        keep = np.sort(rng.choice(len(train_arrays), size=params.max_train_samples, replace=False))
        train_arrays = train_arrays.subset(keep)
    state = train_sisa(
        arch,
        params,
        train_arrays,
        int(spec["shards"]),
        int(spec["slices"]),
        callbacks,
        seed=params.seed,
    )
    metrics: dict[str, float] = {"stages_trained": float(state.stages_trained)}
    if test is not None:
        ensemble = SisaEnsemble(state, device=params.device)
        predicted = ensemble.predict(test)
        metrics["test_accuracy"] = float((predicted == test.labels).mean())
        ctx.metric("test_accuracy", metrics["test_accuracy"])
    shards, extra = pack(state)
    return shards, extra, metrics, list(train_arrays.sample_ids)
