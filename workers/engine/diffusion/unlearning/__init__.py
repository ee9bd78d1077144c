"""Diffusion-erasure methods: one file per method, one registry of implementations.

What each method is (params, paper, families, data needs) is declared in
``contracts.methods.diffusion``. To add a method: declare it there, write a file here
with a ``DiffusionUnlearningMethod`` subclass whose ``spec`` is that declaration,
decorated with ``@register_diffusion_method``, import it below, and add its small-budget
params to ``FAST`` in ``tests/workers/engine/diffusion/test_methods.py``; the shared test
then runs it (and fails while a declaration has no implementation). Importing this
package loads no torch.
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
    "get_diffusion_method",
    "register_diffusion_method",
]
