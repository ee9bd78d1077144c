from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import Reader
from api.families import service
from api.families.schemas import FamilyPublic
from api.schemas import ERRORS, NOT_FOUND

router = APIRouter(prefix="/families", tags=["families"], responses=ERRORS)


@router.get("", response_model=list[FamilyPublic])
def list_families(_: Reader) -> list[FamilyPublic]:
    """Every model family: its architectures, the params schemas of its train, generate and
    evaluate jobs, the job kinds and forget scopes it takes, its judge, its deletion-policy
    defaults, its methods and the checkpoint formats it accepts. Forms are built from this;
    a family's rules live in its declaration (``contracts``), nowhere else."""
    return [FamilyPublic.model_validate(f) for f in service.list_families()]


@router.get("/{name}", response_model=FamilyPublic, responses=NOT_FOUND)
def get_family(
    name: Annotated[str, Path(max_length=60, description="The family's name")], _: Reader
) -> FamilyPublic:
    """One model family (404 naming the known ones for an unknown name)."""
    return FamilyPublic.model_validate(service.family_or_404(name))
