"""One builder for unlearn job specs, used by the REST API and by the deletion workflow.

The spec used to be assembled twice (``api/jobs/service.py`` and the deletion flow's
``_submit``) and the copies had drifted: the workflow's jobs lacked ``family``, and the
queue was derived from the params in one place and from the policy in the other. Both
callers now build the same keys here, and the queue always follows the device.
Torch-free: the API imports it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.jobs import new_job, queue_for
from models import DatasetVersion, Job, ModelVersion

# Keys only the deletion workflow adds: which request(s) and item(s) a run serves.
WORKFLOW_KEYS = (
    "deletion_request_id",
    "deletion_item_id",
    "deletion_request_ids",
    "deletion_item_ids",
    "workflow",
)


def unlearn_spec(
    *,
    forget: dict[str, Any],
    forget_kind: str,
    forget_hash: str,
    forget_count: int,
    dataset_version: DatasetVersion | None,
    evaluate: bool,
    exact: bool,
    family: str,
    judge: dict[str, Any] | None = None,
    shadow_models: int | None = None,
) -> dict[str, Any]:
    """The spec of an unlearn job: what to forget, from which dataset version, and how
    the result is checked. Optional keys appear only when set, as the worker reads them."""
    spec: dict[str, Any] = {
        "forget": forget,
        "forget_kind": forget_kind,
        "forget_hash": forget_hash,
        "forget_count": forget_count,
        "dataset_id": dataset_version.dataset_id if dataset_version else None,
        "dataset_version": dataset_version.version if dataset_version else None,
        "dataset_version_id": dataset_version.id if dataset_version else None,
        "evaluate": evaluate,
        "exact": exact,
        "family": family,
    }
    if judge is not None:
        spec["judge"] = judge
    if shadow_models:
        spec["shadow_models"] = shadow_models
    return spec


def workflow_keys(
    request_ids: list[str], item_ids: list[str]
) -> dict[str, Any]:
    """The keys tying a run to the deletion request(s) it serves (the first is primary)."""
    return {
        "deletion_request_id": request_ids[0],
        "deletion_item_id": item_ids[0],
        "deletion_request_ids": request_ids,
        "deletion_item_ids": item_ids,
        "workflow": True,
    }


def device_of(params: dict[str, Any], default: str = "cpu") -> str:
    """The torch device a job's params ask for."""
    return str(params.get("device") or default)


def new_unlearn_job(
    session: Session,
    version: ModelVersion,
    method: str,
    params: dict[str, Any],
    spec: dict[str, Any],
    created_by: str,
    *,
    device: str | None = None,
) -> Job:
    """Insert the queued unlearn job; its queue follows ``device`` (else the params')."""
    return new_job(
        session,
        "unlearn",
        created_by,
        queue=queue_for(device or device_of(params)),
        model_id=version.model_id,
        dataset_id=spec["dataset_id"],
        model_version_id=version.id,
        method=method,
        params=params,
        spec=spec,
    )
