"""DDPM checkpoints and ESD-style deltas, both safetensors with their config in metadata.

A full checkpoint carries the architecture, so the file alone rebuilds the model. An
erasure that trained a subset is stored as a *delta*: only the tensors that differ from
the parent (ESD's habit of saving just the trained layers), plus the parent's sha256,
so a reviewer can see exactly which weights an erasure touched and a worker rebuilds the
child from the parent it already has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

from contracts.ddpm import DiffusionArchitecture
from workers.engine.checkpoint import load_checkpoint, save_checkpoint
from workers.engine.diffusion.models import validate_unet_state_dict
from workers.engine.errors import CheckpointError

CHECKPOINT_FORMAT = "expunge.ddpm/1"
DELTA_FORMAT = "expunge.ddpm_delta/1"

PathLike = str | os.PathLike[str]


def save_ddpm(
    path: PathLike, arch: DiffusionArchitecture, state_dict: Mapping[str, torch.Tensor]
) -> str:
    """Write a full DDPM checkpoint; returns its sha256."""
    validate_unet_state_dict(arch, state_dict)
    config = {"format": CHECKPOINT_FORMAT, "arch": arch.model_dump(mode="json")}
    return save_checkpoint(path, state_dict, config)


def load_ddpm(path: PathLike) -> tuple[DiffusionArchitecture, dict[str, torch.Tensor]]:
    """Read a checkpoint written by ``save_ddpm``, checking it fits its own architecture."""
    state_dict, config = load_checkpoint(path)
    if config.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a DDPM checkpoint (format {config.get('format')!r})")
    arch = DiffusionArchitecture.model_validate(config["arch"])
    validate_unet_state_dict(arch, state_dict)
    return arch, state_dict


def changed_tensors(
    parent: Mapping[str, torch.Tensor], child: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The tensors of ``child`` that are not bit-identical to ``parent``'s."""
    if set(parent) != set(child):
        raise CheckpointError("parent and child state dicts have different keys")
    return {k: v for k, v in child.items() if not torch.equal(v.cpu(), parent[k].cpu())}


def save_delta(
    path: PathLike,
    parent: Mapping[str, torch.Tensor],
    child: Mapping[str, torch.Tensor],
    parent_sha256: str,
    info: Mapping[str, Any] | None = None,
) -> tuple[str, list[str]]:
    """Write only the changed tensors; returns (sha256 of the file, changed keys)."""
    delta = changed_tensors(parent, child)
    config = {"format": DELTA_FORMAT, "parent_sha256": parent_sha256, **dict(info or {})}
    return save_checkpoint(path, delta, config), sorted(delta)


def load_delta(path: PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a delta: (changed tensors, its metadata including ``parent_sha256``)."""
    delta, config = load_checkpoint(path)
    if config.get("format") != DELTA_FORMAT:
        raise CheckpointError(f"{path} is not a DDPM delta (format {config.get('format')!r})")
    return delta, config


def apply_delta(
    parent: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The child state dict: the parent with the delta's tensors substituted."""
    unknown = [k for k in delta if k not in parent]
    if unknown:
        raise CheckpointError(
            f"delta has {len(unknown)} key(s) the parent lacks, e.g. {unknown[0]}"
        )
    wrong = [k for k, v in delta.items() if tuple(v.shape) != tuple(parent[k].shape)]
    if wrong:
        raise CheckpointError(f"delta tensor {wrong[0]} does not match the parent's shape")
    return {k: delta.get(k, v).clone() for k, v in parent.items()}
