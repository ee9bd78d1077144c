"""Declarations shared by the API, ``core``, the workers and the engine.

Pydantic and the standard library only: nothing here imports torch or any other package
of this repository (import-linter contract ``contracts-bottom``), so every side can import
it. Each model family's schemas and its :class:`~contracts.family.FamilyDeclaration` live
in one module (``classifier``, ``ddpm``, ``text2image``); what several families share
lives in ``common`` and ``judge``; the unlearning methods in ``methods``.

Adding a family: declare it in its own module and add it to ``FAMILIES`` below.
"""

from __future__ import annotations

from contracts.causal_lm import CAUSAL_LM
from contracts.classifier import CLASSIFIER
from contracts.ddpm import DDPM
from contracts.family import (
    FamilyDeclaration,
    UnknownFamily,
    families,
    families_where,
    family_names,
    get_family,
    register,
)
from contracts.methods import method_names
from contracts.text2image import STABLE_DIFFUSION, TEXT2IMAGE

__all__ = [
    "FAMILIES",
    "FamilyDeclaration",
    "UnknownFamily",
    "families",
    "families_where",
    "family_names",
    "get_family",
]

# Every model family, in the order the API lists them.
FAMILIES: tuple[FamilyDeclaration, ...] = (
    CLASSIFIER,
    DDPM,
    TEXT2IMAGE,
    STABLE_DIFFUSION,
    CAUSAL_LM,
)
register(*FAMILIES, method_names=method_names)
