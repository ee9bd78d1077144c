"""The Compare page's API: stored views of one evaluation, and unlearning jobs side by side.

The views are computed by the worker when it evaluates (``workers/engine/views.py``) and
stored as the job's ``views`` artifact, so reading them here is one object fetch and no
torch. The comparison only reads job rows.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Reader, SessionDep, StoreDep
from api.jobs import service
from api.jobs.schemas import ComparePublic, CompareRow, JobViewsPublic
from api.schemas import ERRORS, NOT_FOUND
from core.errors import NotFound, Unprocessable
from core.storage import ObjectNotFound, ObjectStore
from models import Job

API_PREFIX = "/api/v1"
VIEWS_ARTIFACT = "views"  # the name workers/jobs/evaluate.py lists the file under
MAX_COMPARED = 20

views_router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)
compare_router = APIRouter(prefix="/compare", tags=["jobs"], responses=ERRORS)


def _no_views_reason(job: Job) -> str:
    if job.spec.get("family") in ("ddpm", "text2image"):
        return (
            f"job {job.id} is a {job.spec['family']} job; the Compare views are for "
            "classifier evaluations (see its generated images instead)"
        )
    if job.kind not in ("unlearn", "evaluate"):
        return f"job {job.id} is a {job.kind} job; only unlearn and evaluate jobs have views"
    if job.state != "succeeded":
        return f"job {job.id} is {job.state}; its views are stored when it succeeds"
    return (
        f"job {job.id} has no stored views: it ran before views existed, was not evaluated, "
        "or had no forget scope and test split. Run an evaluate job with a forget scope "
        "on its model version to make them"
    )


def load_views(session: Session, store: ObjectStore, job: Job) -> JobViewsPublic:
    artifact = next(
        (a for a in job.artifacts or [] if a.get("name") == VIEWS_ARTIFACT and a.get("key")),
        None,
    )
    if artifact is None:
        raise NotFound(_no_views_reason(job))
    try:
        raw = json.loads(store.get_bytes(artifact["key"]))
    except ObjectNotFound:
        raise NotFound(
            f"the views of job {job.id} are gone from storage (its version was purged?)"
        ) from None
    dataset_id = raw.get("dataset_id") or job.dataset_id or ""
    for sample in raw.get("attack", {}).get("at_risk", []):
        sample["image_url"] = (
            f"{API_PREFIX}/datasets/{quote(dataset_id, safe='')}/samples/"
            f"{quote(sample['sample_id'], safe='')}/image"
        )
    return JobViewsPublic.model_validate({**raw, "job_id": job.id, "dataset_id": dataset_id})


@views_router.get("/{job_id}/views", response_model=JobViewsPublic, responses=NOT_FOUND)
def get_views(job_id: str, session: SessionDep, store: StoreDep, _: Reader) -> JobViewsPublic:
    """Class-wise accuracy, confusion matrices, feature map, CKA and the attack view,
    as the job's evaluation stored them (404 with the reason when it stored none)."""
    return load_views(session, store, service.get_or_404(session, job_id))


def _number(evaluation: dict[str, Any], key: str) -> float | None:
    value = evaluation.get(key)
    return float(value) if isinstance(value, int | float) else None


def compare_row(session: Session, job: Job) -> CompareRow:
    evaluation = job.metrics.get("evaluation") or {}
    comparison = service.comparison(session, job) or {}
    seconds = job.metrics.get("unlearn_seconds") or job.wall_seconds
    spec = job.spec or {}
    return CompareRow(
        job_id=job.id,
        kind=job.kind,
        state=job.state,
        method=job.method,
        params=job.params or {},
        model_id=job.model_id,
        model_version_id=job.model_version_id,
        result_version_id=job.result_version_id,
        forget_kind=spec.get("forget_kind")
        or (next(iter(spec["forget"]), None) if spec.get("forget") else None),
        forget_count=job.metrics.get("forget_count") or spec.get("forget_count"),
        exact=bool(spec.get("exact")),
        UA=_number(evaluation, "UA"),
        RA=_number(evaluation, "RA"),
        TA=_number(evaluation, "TA"),
        MIA=_number(evaluation, "MIA"),
        loss_auc=_number(evaluation, "loss_auc"),
        reference_job_id=spec.get("reference_job_id"),
        avg_gap=comparison.get("avg_gap"),
        seconds=float(seconds) if seconds is not None else None,
        speedup=comparison.get("speedup"),
        has_views=any(a.get("name") == VIEWS_ARTIFACT for a in job.artifacts or []),
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def parse_ids(jobs: str) -> list[str]:
    ids = list(dict.fromkeys(part.strip() for part in jobs.split(",") if part.strip()))
    if not ids:
        raise Unprocessable("give at least one job id: ?jobs=job_a,job_b", field="jobs")
    if len(ids) > MAX_COMPARED:
        raise Unprocessable(
            f"compare at most {MAX_COMPARED} jobs at once (got {len(ids)})", field="jobs"
        )
    return ids


def compare(session: Session, ids: list[str]) -> ComparePublic:
    found = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(ids))).all()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"job(s) not found: {', '.join(missing)[:300]}")
    wrong = [f"{i} ({found[i].kind})" for i in ids if found[i].kind not in ("unlearn", "evaluate")]
    if wrong:
        raise Unprocessable(
            f"only unlearn and evaluate jobs can be compared; not: {', '.join(wrong)[:300]}",
            field="jobs",
        )
    rows = [compare_row(session, found[i]) for i in ids]
    return ComparePublic(data=rows, count=len(rows))


@compare_router.get("", response_model=ComparePublic, responses=NOT_FOUND)
def compare_jobs(
    session: SessionDep,
    _: Reader,
    jobs: Annotated[
        str,
        Query(
            min_length=1,
            max_length=2000,
            description=f"Comma-separated job ids (unlearn or evaluate), at most {MAX_COMPARED}",
        ),
    ],
) -> ComparePublic:
    """UA, RA, TA, MIA, loss AUC, Avg. Gap to the reference and cost, per job, in order."""
    return compare(session, parse_ids(jobs))
