"""The baseline for bench/api.py: a bare FastAPI endpoint that validates a similar body.

The ratio of Expunge's POST /jobs to this, measured side by side, says what auth,
validation, the database transaction and the broker publish cost on this machine.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Body(BaseModel):
    kind: str
    model_id: str
    dataset_id: str
    params: dict[str, Any] = {}


@app.post("/jobs", status_code=201)
def create(body: Body) -> dict[str, Any]:
    return {"id": "job_bare", "state": "queued", **body.model_dump()}
