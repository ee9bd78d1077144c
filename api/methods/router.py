from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import Reader
from api.methods import service
from api.schemas import ERRORS
from contracts import family_names

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
    needs_forget_images: bool | None = Field(
        None, description="ddpm methods: whether real images of the erased classes are used"
    )
    needs_retain_images: bool | None = Field(
        None, description="ddpm methods: whether real images of the other classes are used"
    )


@router.get("", response_model=list[MethodPublic])
def list_methods(
    _: Reader,
    family: Annotated[
        str | None,
        Query(
            pattern=f"^({'|'.join(family_names())})$",
            description="Only this model family",
        ),
    ] = None,
) -> list[MethodPublic]:
    """Every unlearning method with its paper, scopes and parameter schema (with defaults).

    ``family`` says which models a method applies to: ``classifier``, ``ddpm``,
    ``text2image`` or ``stable_diffusion`` (one row per family). Some
    names exist in both families (e.g. ``retrain``); a job resolves the name against the
    family of the model version it unlearns.
    """
    return [
        MethodPublic.model_validate(m)
        for m in service.methods()
        if family is None or m["family"] == family
    ]
