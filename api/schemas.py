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


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """A 422: ``detail`` lists the issues for malformed input (with a one-line
    ``message``), or is one sentence for input that is well-formed but not acceptable."""

    detail: str | list[ValidationIssue]
    code: str
    field: str | None = None
    message: str | None = None


class ORMModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


ERRORS = {
    400: {"model": ErrorBody, "description": "Malformed request (a body that cannot be parsed)"},
    401: {"model": ErrorBody, "description": "Missing, malformed or revoked API key"},
    403: {"model": ErrorBody, "description": "The key's role may not do this"},
    422: {"model": ValidationErrorBody, "description": "Invalid input"},
}
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such resource"}}
CONFLICT = {409: {"model": ErrorBody, "description": "Conflicts with the current state"}}
