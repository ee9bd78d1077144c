"""The unlearning methods as the API publishes them, read from ``contracts.methods``.

Classifier methods and diffusion erasure methods share some names (``retrain``,
``salun``, ``gradient_ascent``), so a method is always resolved together with the family
of the model it is asked to unlearn.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from api.schemas import validate_strictly
from contracts.methods import UnknownMethod, describe_methods, get_method_spec
from contracts.text2image import PROMPT_FAMILIES
from core.errors import Unprocessable


@lru_cache
def methods() -> list[dict[str, Any]]:
    """Every method of every family, sorted by (name, family)."""
    return describe_methods()


def method_info(name: str, family: str = "classifier") -> dict[str, Any]:
    for method in methods():
        if method["name"] == name and method["family"] == family:
            return method
    elsewhere = sorted({m["family"] for m in methods() if m["name"] == name})
    if elsewhere and not set(elsewhere) - set(PROMPT_FAMILIES) and family not in elsewhere:
        raise Unprocessable(
            f"method {name!r} does not apply to {family} models: {name} needs a "
            f"prompt-conditioned model ({', '.join(elsewhere)})",
            field="method",
        )
    known = ", ".join(m["name"] for m in methods() if m["family"] == family)
    raise Unprocessable(
        f"unknown method {name!r} for {family} models; choose one of: {known}", field="method"
    )


def validate_params(
    name: str, params: dict[str, Any], family: str = "classifier"
) -> dict[str, Any]:
    """Params checked against the method's schema now, so a typo is a 422, not a failed job."""
    try:
        cls = get_method_spec(name, family).params_for(family)
    except UnknownMethod as exc:
        raise Unprocessable(str(exc), field="method") from exc
    if not cls.model_fields:
        if params:
            raise Unprocessable(f"{name} takes no params", field="params")
        return {}
    try:
        return validate_strictly(cls, params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unprocessable(f"params.{where}: {first['msg']}", field=f"params.{where}") from exc
