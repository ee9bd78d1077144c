"""The method registries as the API publishes them (torch-free: the engine keeps them so).

Classifier methods and diffusion (``ddpm``) erasure methods live in two registries and
share some names (``retrain``, ``salun``, ``gradient_ascent``), so a method is always
resolved together with the family of the model it is asked to unlearn.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from api.schemas import validate_strictly
from contracts.text2image import PROMPT_FAMILIES
from core.errors import Unprocessable
from workers.engine.diffusion.unlearning import describe_diffusion_methods, get_diffusion_method
from workers.engine.diffusion.unlearning.retrain import RETRAIN_FAMILIES
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

# Diffusion methods erase classes; only the exact retrain can also drop individual
# samples or subjects (it trains again on whatever remains). On the prompt families
# (text2image, stable_diffusion) what is erased is a concept named by prompts, except
# by retrain (text2image only), which trains again on the retained samples.
DIFFUSION_SCOPES = {"retrain": ["labels", "sample_ids", "subject_ids"]}
DIFFUSION_FAMILIES = ("ddpm", *PROMPT_FAMILIES)


def _diffusion_methods() -> list[dict[str, Any]]:
    """One row per (method, family) it applies to."""
    out = []
    for method in describe_diffusion_methods():
        extra = {k: method.pop(k) for k in ("needs_forget_images", "needs_retain_images")}
        concept_schema = method.pop("concept_params_schema")
        families = method.pop("families")
        if method["name"] == "retrain":
            families = [*families, *(f for f in RETRAIN_FAMILIES if f not in families)]
        for family in families:
            scopes = DIFFUSION_SCOPES.get(
                method["name"], ["concept"] if family in PROMPT_FAMILIES else ["labels"]
            )
            schema = concept_schema if family in PROMPT_FAMILIES else method["params_schema"]
            out.append(
                {
                    **method,
                    "family": family,
                    "scopes": scopes,
                    "supports_loreun": False,
                    "params_schema": schema,
                    **extra,
                }
            )
    return out


@lru_cache
def methods() -> list[dict[str, Any]]:
    """Every method of every family, sorted by (name, family)."""
    every = [*describe_methods(), SISA, *_diffusion_methods()]
    return sorted(every, key=lambda m: (m["name"], m["family"]))


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
    if name == "sisa" and family == "classifier":
        if params:
            raise Unprocessable("sisa takes no params", field="params")
        return {}
    try:
        cls = (
            get_diffusion_method(name).params_class(family)
            if family in DIFFUSION_FAMILIES
            else get_method(name).Params
        )
    except UnknownMethod as exc:
        raise Unprocessable(str(exc), field="method") from exc
    try:
        return validate_strictly(cls, params).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Unprocessable(f"params.{where}: {first['msg']}", field=f"params.{where}") from exc
