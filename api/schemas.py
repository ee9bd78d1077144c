"""Schemas shared across domains: pages and errors."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of results; pass ``next_cursor`` back as ``cursor`` for the next page."""

    data: list[T]
    count: int
    next_cursor: str | None = None


class ErrorBody(BaseModel):
    detail: str
    code: str
    field: str | None = None


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


ERRORS = {
    401: {"model": ErrorBody, "description": "Missing, malformed or revoked API key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
}
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such resource"}}
CONFLICT = {409: {"model": ErrorBody, "description": "Conflicts with the current state"}}
