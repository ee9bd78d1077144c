"""The method registry as the API publishes it (torch-free: the engine keeps it so)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from core.errors import Unprocessable
from workers.engine.unlearning import describe_methods, get_method
from workers.engine.unlearning.base import UnknownMethod

SISA = {
    "name": "sisa",
    "family": "classifier",
    "exact": True,
    "paper": "Bourtoule et al., Machine Unlearning (SISA), IEEE S&P 2021, arXiv:1912.03817",
    "scopes": ["labels", "sample_ids", "subject_ids"],
    "supports_loreun": False,
    "summary": "Retrain only the shards that held the forgotten samples, from the last "
    "checkpoint before their first slice. Needs a version trained with {'sisa': ...}.",
    "params_schema": {"type": "object", "properties": {}, "additionalProperties": False},
}


@lru_cache
def methods() -> list[dict[str, Any]]:
    return sorted([*describe_methods(), SISA], key=lambda m: m["name"])


def method_info(name: str) -> dict[str, Any]:
    for method in methods():
        if method["name"] == name:
            return method
    known = ", ".join(m["name"] for m in methods())
    raise Unprocessable(f"unknown method {name!r}; choose one of: {known}", field="method")


def validate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Params checked against the method's schema now, so a typo is a 422, not a failed job."""
    if name == "sisa":
        if params:
            raise Unprocessable("sisa takes no params", field="params")
        return {}
    try:
        cls = get_method(name).Params
    except UnknownMethod as exc:
        raise Unprocessable(str(exc), field="method") from exc
    try:
        return cls.model_validate(params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unprocessable(f"params.{where}: {first['msg']}", field=f"params.{where}") from exc
