from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import Compliance, SessionDep, SettingsDep
from api.jobs.schemas import JobPublic
from api.models.service import get_model_or_404
from api.schemas import CONFLICT, ERRORS, NOT_FOUND
from api.tuning import service
from api.tuning.schemas import TuneCreate
from core.queue import send_job

router = APIRouter(tags=["models"], responses=ERRORS)


@router.post(
    "/models/{model_id}/tune",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    responses={**NOT_FOUND, **CONFLICT},
)
def tune_deletion_policy(
    model_id: str, body: TuneCreate, session: SessionDep, settings: SettingsDep, key: Compliance
) -> JobPublic:
    """Start a ``tune`` job: a small search over a method's parameters on a pseudo-forget
    set of the model's own training samples, scored against a retrain; the winner becomes
    the deletion policy's ``method_params`` (so it needs the same role as changing it)."""
    model = get_model_or_404(session, model_id)
    job = service.create_tune_job(session, model, body, key.id)
    session.commit()  # the queue must never carry an id the database does not have
    send_job(session, job.id, job.queue, settings)
    session.refresh(job)
    return JobPublic.model_validate(job)
