"""The family declarations (``contracts``) as the API publishes them."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from contracts import FamilyDeclaration, UnknownFamily, families, get_family
from core.deletion.policy import DeletionPolicy
from core.errors import NotFound


def _public(family: FamilyDeclaration) -> dict[str, Any]:
    described = family.describe()
    # The whole policy a fresh model gets, not only the fields the family changes.
    described["policy_defaults"] = DeletionPolicy.for_family(family.name, None).model_dump(
        mode="json"
    )
    return described


@lru_cache
def list_families() -> list[dict[str, Any]]:
    """Every family, in the registry's order (the declarations never change at run time)."""
    return [_public(f) for f in families()]


def family_or_404(name: str) -> dict[str, Any]:
    try:
        family = get_family(name)
    except UnknownFamily as exc:
        raise NotFound(str(exc)) from exc
    return next(f for f in list_families() if f["name"] == family.name)
