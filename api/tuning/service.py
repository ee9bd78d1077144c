"""Create a tuning job: pick the version, the candidates and the pseudo-forget set."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.methods.service import method_info, validate_params
from api.tuning.schemas import MAX_CANDIDATES, TuneCreate
from core.deletion.policy import DeletionPolicy
from core.errors import Conflict, NotFound, Unprocessable
from core.jobs import new_job, queue_for
from core.lineage import decode_mask, in_version
from models import DatasetVersion, Job, Model, ModelVersion, Sample


def default_grid(method: str) -> dict[str, list[Any]]:
    """A small search around the method's defaults: learning rate x budget for methods
    that take optimizer steps, nothing for the others (their defaults are the one try)."""
    properties = method_info(method)["params_schema"].get("properties", {})
    if "lr" not in properties or "budget_fraction" not in properties:
        return {}
    lr = float(properties["lr"]["default"])
    return {"lr": [lr / 3, lr, lr * 3], "budget_fraction": [0.1, 0.2, 0.3]}


def candidates(method: str, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid, each checked against the method's schema (a typo
    is a 422 now, not a failed job). Kept as given, so budget defaults stay budgets."""
    keys = sorted(grid)
    for key in keys:
        if not isinstance(grid[key], list) or not grid[key]:
            raise Unprocessable(f"grid.{key} must be a non-empty list", field=f"grid.{key}")
    combos = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[k] for k in keys))
    ]
    if len(combos) > MAX_CANDIDATES:
        raise Unprocessable(
            f"the grid makes {len(combos)} candidates; at most {MAX_CANDIDATES} (each costs "
            "up to half a retrain)",
            field="grid",
        )
    for combo in combos:
        validate_params(method, combo)
        if "seed" in combo or "device" in combo:
            raise Unprocessable("seed and device are the tuning job's own", field="grid")
    return combos


def _version(session: Session, model: Model, version_id: str | None) -> ModelVersion:
    if version_id is not None:
        version = session.get(ModelVersion, version_id)
        if version is None or version.model_id != model.id:
            raise NotFound(f"model version {version_id} of model {model.id} not found")
        if version.status != "active":
            raise Conflict(f"model version {version.id} is {version.status}; tune an active one")
    else:
        version = session.scalar(
            select(ModelVersion)
            .where(ModelVersion.model_id == model.id, ModelVersion.status == "active")
            .order_by(ModelVersion.version.desc())
            .limit(1)
        )
        if version is None:
            raise Conflict(f"model {model.id} has no active version to tune on; train one first")
    if version.dataset_version_id is None or version.training_mask is None:
        raise Unprocessable(
            f"model version {version.id} has no recorded training samples (an uploaded "
            "checkpoint); tuning draws its pseudo-forget set from them",
            field="model_version_id",
        )
    return version


def pseudo_forget(
    session: Session, version: ModelVersion, fraction: float, seed: int
) -> tuple[DatasetVersion, list[str], int]:
    """A seeded random share of the samples the version was trained on."""
    dsv = session.get(DatasetVersion, version.dataset_version_id)
    assert dsv is not None and version.training_mask is not None
    mask = decode_mask(version.training_mask)
    rows = session.execute(
        select(Sample.position, Sample.sample_id)
        .where(
            Sample.dataset_id == dsv.dataset_id,
            Sample.split == "train",
            in_version(dsv.version),
        )
        .order_by(Sample.position)
    ).all()
    trained = [sid for p, sid in rows if p < len(mask) and mask[p]]
    count = int(round(fraction * len(trained)))
    if count < 2 or count >= len(trained):
        raise Unprocessable(
            f"{fraction:g} of the {len(trained)} trained samples is {count}: too few to tune "
            "on; raise pseudo_forget_fraction",
            field="pseudo_forget_fraction",
        )
    rng = np.random.default_rng(seed)
    chosen = sorted(trained[i] for i in rng.choice(len(trained), size=count, replace=False))
    return dsv, chosen, len(trained)


def create_tune_job(session: Session, model: Model, body: TuneCreate, created_by: str) -> Job:
    if model.family != "classifier":
        raise Unprocessable(
            f"tuning runs classifier methods; a {model.family} model's policy is set by hand "
            "(PUT /models/{id}/deletion-policy)",
            field="model_id",
        )
    policy = DeletionPolicy.for_family(model.family, model.deletion_policy)
    method = body.method or policy.method
    info = method_info(method, model.family)
    if info["exact"]:
        raise Unprocessable(
            f"{method} is exact: it has nothing to tune; pick an approximate method",
            field="method",
        )
    if "sample_ids" not in info["scopes"]:
        raise Unprocessable(
            f"{method} cannot forget samples, and the pseudo-forget set is samples; it is a "
            "class method",
            field="method",
        )
    tried = candidates(method, body.grid if body.grid is not None else default_grid(method))
    if not tried:
        tried = [{}]
    version = _version(session, model, body.model_version_id)
    if version.config.get("sisa"):
        raise Unprocessable(
            f"model version {version.id} is a SISA ensemble: its deletions are exact",
            field="model_version_id",
        )
    dsv, forget, trained = pseudo_forget(session, version, body.pseudo_forget_fraction, body.seed)
    return new_job(
        session,
        "tune",
        created_by,
        queue=queue_for(body.device),
        model_id=model.id,
        dataset_id=dsv.dataset_id,
        model_version_id=version.id,
        method=method,
        params=body.model_dump(mode="json", exclude={"model_version_id", "method"}),
        spec={
            "forget": {"sample_ids": forget},
            "forget_kind": "sample_ids",
            "forget_count": len(forget),
            "trained_count": trained,
            "dataset_id": dsv.dataset_id,
            "dataset_version": dsv.version,
            "dataset_version_id": dsv.id,
            "candidates": tried,
            "seed": body.seed,
            "device": body.device,
            "apply": body.apply,
        },
    )
