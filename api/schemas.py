"""Schemas shared across domains: request bodies, pages and errors."""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from fastapi import Depends, Request
from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidatorFunctionWrapHandler,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from core.errors import Unprocessable

T = TypeVar("T")
# Set while a request body is being validated, so nested bodies do not start over.
_VALIDATING: ContextVar[bool] = ContextVar("expunge_validating_body", default=False)


# Bounds every JSON body is held to, whatever its schema says (the schemas are tighter
# where they can be): the longest legitimate list is a forget scope's 100 000 sample ids.
MAX_ITEMS = 100_000
MAX_TEXT = 100_000
MAX_DEPTH = 32


def _issue(kind: str, message: str, loc: tuple[str | int, ...], value: Any) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": value}


def hostile_values(
    value: Any, loc: tuple[str | int, ...] = (), depth: int = 0
) -> list[InitErrorDetails]:
    """NUL characters (Postgres text cannot hold them; no name or reference needs one),
    NaN / Infinity (Python's JSON parser takes them, JSON has no such numbers), lists,
    strings and nesting past the bounds above: anywhere in the body, keys included."""
    if depth > MAX_DEPTH:
        return [_issue("too_deep", f"nested deeper than {MAX_DEPTH} levels", loc, "...")]
    found: list[InitErrorDetails] = []
    if isinstance(value, str):
        if "\x00" in value:
            message = "text may not contain NUL (\\u0000) characters; remove them"
            found.append(_issue("nul_character", message, loc, value[:100]))
        if len(value) > MAX_TEXT:
            message = f"text is over {MAX_TEXT} characters"
            found.append(_issue("too_long", message, loc, value[:100]))
    elif isinstance(value, float) and not math.isfinite(value):
        message = "NaN and Infinity are not JSON numbers; send a finite number"
        found.append(_issue("finite_number", message, loc, str(value)))
    elif isinstance(value, (dict, list)) and len(value) > MAX_ITEMS:
        message = f"more than {MAX_ITEMS} entries; send fewer per request"
        found.append(_issue("too_long", message, loc, len(value)))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += hostile_values(key, (*loc, str(key)), depth + 1)
            found += hostile_values(item, (*loc, str(key)), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += hostile_values(item, (*loc, index), depth + 1)
    return found


async def form_text_checked(request: Request) -> None:
    """Multipart and urlencoded form fields (and upload file names) held to the JSON
    bodies' NUL rule: Postgres refuses a NUL in text, SQLite would store it, so both
    answer a 422 naming the field instead. Undecodable UTF-8 never gets here: Starlette
    decodes such a part as Latin-1. Declared (``FORM_TEXT``) after the rate limit on every
    route that takes a form (tests/api/test_hostile_input.py checks none lacks it); it
    runs after the framework parsed the form."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith(("multipart/", "application/x-www-form-urlencoded")):
        return
    form = await request.form()  # parsed already for the route: Starlette caches it
    for field, value in form.multi_items():
        texts = [value] if isinstance(value, str) else [value.filename or ""]
        if "\x00" in field or any("\x00" in text for text in texts):
            what = "text" if isinstance(value, str) else "the file name"
            raise Unprocessable(
                f"{field.replace(chr(0), '')}: {what} may not contain NUL (\\u0000) "
                "characters; remove them",
                field=field.replace("\x00", ""),
            )


FORM_TEXT = Depends(form_text_checked)


class RequestBody(BaseModel):
    """Every JSON request body: unknown fields refused, types strict (``true`` is not 1,
    ``"3"`` is not 3, ``1.5`` is not an integer) all the way down, nested models of the
    engine included; NUL characters and NaN refused in any field.

    Strictness is applied to the whole body at once (``strict=True`` reaches every
    nested model), not declared field by field, so a schema added later cannot forget it.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _strict_body(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if _VALIDATING.get() or not isinstance(data, dict):
            return handler(data)
        hostile = hostile_values(data)
        if hostile:
            raise ValidationError.from_exception_data(cls.__name__, hostile)
        token = _VALIDATING.set(True)
        try:
            cls.__pydantic_validator__.validate_python(data, strict=True)
            # The strict pass only checks; the instance comes from the ordinary path, so a
            # body built in code (``JudgeParams()``, ``TrainJobCreate(kind=..., ...)``)
            # fills ``self``: pydantic ignores another instance returned to ``__init__``.
            # Still flagged, so nested bodies are not checked (and scanned) once more.
            return handler(data)
        finally:
            _VALIDATING.reset(token)


def strict_body(value: Any, handler: ValidatorFunctionWrapHandler, model: type[BaseModel]) -> Any:
    """The same rules as :class:`RequestBody` for a body whose schema lives outside the
    API (``Annotated[Model, WrapValidator(partial(strict_body, model=Model))]``)."""
    if not isinstance(value, dict):
        return handler(value)
    hostile = hostile_values(value)
    if hostile:
        raise ValidationError.from_exception_data(model.__name__, hostile)
    return validate_strictly(model, value)


def validate_strictly(model: type[BaseModel], value: Any) -> Any:
    """Validate ``value`` (parsed JSON) against an engine schema as strictly as a request
    body: JSON types only (a list is a tuple, a string is not a number)."""
    import json

    return model.model_validate_json(json.dumps(value), strict=True)


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
