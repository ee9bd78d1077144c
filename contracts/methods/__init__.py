"""Every unlearning method, declared once: params schemas, papers, scopes, cost model.

The API lists and validates from here, ``core`` prices attempts from here, and the
engine's implementations (``workers.engine.unlearning``,
``workers.engine.diffusion.unlearning``) take their params and metadata from here.
Classifier and diffusion methods share some names (``retrain``, ``salun``,
``gradient_ascent``), so a method is always resolved together with a model family.
"""

from __future__ import annotations

from typing import Any

from contracts.methods.base import (
    CLASSIFIER_SCOPES,
    DEFAULT_BUDGET_FRACTION,
    Budget,
    ClassifierMethodSpec,
    ClassifierScope,
    ForgetLossParams,
    InvalidMethodParams,
    IterativeParams,
    MethodError,
    MethodParams,
    MethodSpec,
    UnknownMethod,
    UnsupportedScope,
)
from contracts.methods.causal_lm import CAUSAL_LM_METHODS, LMMethodSpec
from contracts.methods.classifier import CLASSIFIER_METHODS
from contracts.methods.diffusion import DIFFUSION_METHODS, DiffusionMethodSpec

__all__ = [
    "CAUSAL_LM_METHODS",
    "CLASSIFIER_METHODS",
    "CLASSIFIER_SCOPES",
    "DEFAULT_BUDGET_FRACTION",
    "DIFFUSION_METHODS",
    "Budget",
    "ClassifierMethodSpec",
    "ClassifierScope",
    "DiffusionMethodSpec",
    "ForgetLossParams",
    "InvalidMethodParams",
    "IterativeParams",
    "LMMethodSpec",
    "MethodError",
    "MethodParams",
    "MethodSpec",
    "UnknownMethod",
    "UnsupportedScope",
    "describe_methods",
    "get_classifier_method",
    "get_method_spec",
    "method_names",
]

_SPECS: dict[tuple[str, str], MethodSpec] = {}
for _spec in (*CLASSIFIER_METHODS, *DIFFUSION_METHODS, *CAUSAL_LM_METHODS):
    for _family in _spec.job_families:
        if (_spec.name, _family) in _SPECS:
            raise TypeError(f"method {_spec.name!r} is declared twice for {_family}")
        _SPECS[(_spec.name, _family)] = _spec


def get_method_spec(name: str, family: str = "classifier") -> MethodSpec:
    """The method declared under ``name`` for models of ``family``."""
    try:
        return _SPECS[(name, family)]
    except KeyError:
        known = ", ".join(method_names(family))
        raise UnknownMethod(
            f"unknown unlearning method {name!r} for {family} models; known: {known}"
        ) from None


def get_classifier_method(name: str) -> ClassifierMethodSpec:
    """The classifier method declared under ``name`` (with its cost model)."""
    spec = get_method_spec(name, "classifier")
    assert isinstance(spec, ClassifierMethodSpec)  # every classifier row is one
    return spec


def method_names(family: str) -> list[str]:
    """Names of the methods that apply to ``family``, sorted."""
    return sorted(name for name, fam in _SPECS if fam == family)


def describe_methods() -> list[dict[str, Any]]:
    """Every method of every family as GET /api/v1/methods publishes it, one row per
    (method, family), sorted by name then family."""
    return [_SPECS[key].describe(key[1]) for key in sorted(_SPECS)]
