"""Diffusion-erasure methods: one file per method, one registry.

Importing this package registers every method without importing torch, so the API can
list them and validate their params. To add a method: write a file with a ``Params``
model and a ``DiffusionUnlearningMethod`` subclass decorated with
``@register_diffusion_method``, import it below, and add its small-budget params to
``FAST`` in ``tests/workers/engine/diffusion/test_methods.py``; the shared test then
runs it.
"""

from workers.engine.diffusion.unlearning import (  # noqa: F401  (imported to register)
    concept_ablation,
    esd,
    gradient_ascent,
    retrain,
    salun,
    uce,
    uno,
)
from workers.engine.diffusion.unlearning.base import (
    DIFFUSION_METHODS,
    ConceptUnlearnData,
    DiffusionMethodParams,
    DiffusionUnlearnData,
    DiffusionUnlearningMethod,
    DiffusionUnlearnResult,
    TrainableSubset,
    describe_diffusion_methods,
    get_diffusion_method,
    register_diffusion_method,
)

__all__ = [
    "DIFFUSION_METHODS",
    "ConceptUnlearnData",
    "DiffusionMethodParams",
    "DiffusionUnlearnData",
    "DiffusionUnlearnResult",
    "DiffusionUnlearningMethod",
    "TrainableSubset",
    "describe_diffusion_methods",
    "get_diffusion_method",
    "register_diffusion_method",
]
