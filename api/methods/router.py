from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Reader
from api.methods import service
from api.schemas import ERRORS

router = APIRouter(prefix="/methods", tags=["methods"], responses=ERRORS)


class MethodPublic(BaseModel):
    name: str
    family: str
    exact: bool
    paper: str
    scopes: list[str]
    supports_loreun: bool
    summary: str
    params_schema: dict[str, Any]


@router.get("", response_model=list[MethodPublic])
def list_methods(_: Reader) -> list[MethodPublic]:
    """Every unlearning method with its paper, scopes and parameter schema (with defaults)."""
    return [MethodPublic.model_validate(m) for m in service.methods()]
