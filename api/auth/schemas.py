from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas import ORMModel, RequestBody

Role = Literal["admin", "compliance", "engineer", "viewer"]


class KeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    role: Role


class KeyPublic(ORMModel):
    id: str
    name: str
    role: str
    prefix: str
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


class KeyCreated(KeyPublic):
    key: str = Field(description="The secret; shown once, store it now")


class KeysPublic(BaseModel):
    data: list[KeyPublic]
    count: int
