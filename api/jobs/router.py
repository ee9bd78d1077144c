from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sse_starlette.sse import EventSourceResponse

from api.deps import (
    READ,
    Engineer,
    Reader,
    SessionDep,
    SettingsDep,
    StoreDep,
    current_key,
    require,
)
from api.jobs import repository, service
from api.jobs.schemas import (
    JobCreate,
    JobEventPublic,
    JobEventsPublic,
    JobMetricsPublic,
    JobPublic,
    JobsPublic,
    MetricPoint,
)
from api.ratelimit import rate_limit
from api.schemas import CONFLICT, ERRORS, NOT_FOUND
from core.errors import Unprocessable
from core.queue import send_job
from models.jobs import JOB_KINDS, JOB_STATES, TERMINAL_STATES

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)

SSE_POLL_SECONDS = 0.3
# Artifact names: a plain file name, no separators, no leading dot.
ARTIFACT_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobPublic,
    responses={**NOT_FOUND, **CONFLICT},
    dependencies=[rate_limit("jobs")],
)
def create_job(
    body: Annotated[JobCreate, Body()], session: SessionDep, settings: SettingsDep, key: Engineer
) -> JobPublic:
    if body.kind == "train":
        jobs = [service.create_train_job(session, body, key.id)]
    elif body.kind == "unlearn":
        jobs = service.create_unlearn_job(session, body, key.id)
    elif body.kind == "generate":
        jobs = [service.create_generate_job(session, body, key.id)]
    else:
        jobs = [service.create_evaluate_job(session, body, key.id)]
    # Commit first: the queue must never carry an id the database does not have.
    session.commit()
    for job in jobs:  # a retrain reference goes first, so a single worker runs it first
        send_job(session, job.id, job.queue, settings)
    job = jobs[-1]
    session.refresh(job)
    return JobPublic.model_validate(job)


@router.get("", response_model=JobsPublic)
def list_jobs(
    session: SessionDep,
    _: Reader,
    kind: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_KINDS) + ")$")] = None,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(JOB_STATES) + ")$")] = None,
    model_id: Annotated[str | None, Query(max_length=40)] = None,
    dataset_id: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> JobsPublic:
    rows = repository.page(
        session,
        kind=kind,
        state=state,
        model_id=model_id,
        dataset_id=dataset_id,
        cursor=cursor,
        limit=limit + 1,
    )
    data = [JobPublic.model_validate(j) for j in rows[:limit]]
    return JobsPublic(
        data=data, count=len(data), next_cursor=rows[limit - 1].id if len(rows) > limit else None
    )


@router.get("/{job_id}", response_model=JobPublic, responses=NOT_FOUND)
def get_job(job_id: str, session: SessionDep, _: Reader) -> JobPublic:
    job = service.get_or_404(session, job_id)
    out = JobPublic.model_validate(job)
    out.comparison = service.comparison(session, job)
    return out


@router.post("/{job_id}/cancel", response_model=JobPublic, responses={**NOT_FOUND, **CONFLICT})
def cancel_job(job_id: str, session: SessionDep, key: Engineer) -> JobPublic:
    job = service.get_or_404(session, job_id)
    return JobPublic.model_validate(service.cancel(session, job, actor=key.id))


@router.get("/{job_id}/logs", response_model=JobEventsPublic, responses=NOT_FOUND)
def get_logs(
    job_id: str,
    session: SessionDep,
    _: Reader,
    cursor: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JobEventsPublic:
    service.get_or_404(session, job_id)
    rows = repository.events_after(session, job_id, cursor or 0, ("log", "state"), limit + 1)
    data = [JobEventPublic.model_validate(e) for e in rows[:limit]]
    return JobEventsPublic(
        data=data,
        count=len(data),
        next_cursor=str(rows[limit - 1].id) if len(rows) > limit else None,
    )


@router.get("/{job_id}/metrics", response_model=JobMetricsPublic, responses=NOT_FOUND)
def get_metrics(job_id: str, session: SessionDep, _: Reader) -> JobMetricsPublic:
    job = service.get_or_404(session, job_id)
    series: dict[str, list[MetricPoint]] = {}
    after = 0
    while True:
        rows = repository.events_after(session, job_id, after, ("metric",), 1000)
        for event in rows:
            series.setdefault(event.data["name"], []).append(
                MetricPoint(
                    step=event.data.get("step"), value=event.data["value"], at=event.created_at
                )
            )
        if len(rows) < 1000:
            break
        after = rows[-1].id
    return JobMetricsPublic(final=job.metrics, series=series)


@router.get(
    "/{job_id}/artifacts/{name}",
    response_class=StreamingResponse,
    responses={
        **NOT_FOUND,
        **CONFLICT,
        200: {"content": {"application/octet-stream": {}, "image/png": {}}},
    },
)
def download_artifact(
    job_id: str,
    name: Annotated[str, Path(pattern=ARTIFACT_NAME, max_length=120)],
    session: SessionDep,
    store: StoreDep,
    _: Reader,
) -> StreamingResponse:
    """One file a job produced, by its name in ``job.artifacts`` (e.g. ``grid.png``).

    Only names the job lists are served, so a name can never reach another object; the
    weights of a tainted or purged version are refused like its checkpoint download.
    """
    job = service.get_or_404(session, job_id)
    artifact = service.find_artifact(session, job, name)
    key = artifact["key"]
    filename = key.rsplit("/", 1)[-1]
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if artifact.get("sha256"):
        headers["X-Artifact-SHA256"] = artifact["sha256"]
    return StreamingResponse(
        store.iter_chunks(key), media_type=service.media_type(filename), headers=headers
    )


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    job_id: str,
    request: Request,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id")] = None,
) -> EventSourceResponse:
    """Server-Sent Events: every event since ``after`` / ``Last-Event-ID``, then live ones.

    Each event's ``id`` is its position in the job's stream, so a client that reconnects
    with ``Last-Event-ID`` misses nothing and sees nothing twice.
    """
    factory = request.app.state.session_factory

    def _auth_and_load() -> None:
        session = factory()
        try:
            key = current_key(request, session)
            require(*READ)(key)
            service.get_or_404(session, job_id)
        finally:
            session.close()

    await run_in_threadpool(_auth_and_load)
    if last_event_id is not None and not last_event_id.isdigit():
        raise Unprocessable("Last-Event-ID must be an event id (digits)", field="Last-Event-ID")
    start = int(last_event_id) if last_event_id else (after or 0)

    def _poll(cursor: int) -> tuple[list[JobEventPublic], str]:
        session = factory()
        try:
            events = [
                JobEventPublic.model_validate(e)
                for e in repository.events_after(session, job_id, cursor, None, 500)
            ]
            job = service.get_or_404(session, job_id)
            return events, job.state
        finally:
            session.close()

    async def generate() -> AsyncIterator[dict[str, str]]:
        cursor = start
        while True:
            events, state = await run_in_threadpool(_poll, cursor)
            for event in events:
                cursor = event.id
                yield {
                    "id": str(event.id),
                    "event": event.type,
                    "data": json.dumps(
                        {**event.data, "at": event.created_at.isoformat()}, separators=(",", ":")
                    ),
                }
            if not events and state in TERMINAL_STATES:
                yield {"event": "end", "data": json.dumps({"state": state})}
                return
            if await request.is_disconnected():
                return
            if not events:
                await asyncio.sleep(SSE_POLL_SECONDS)

    return EventSourceResponse(generate(), ping=15)
