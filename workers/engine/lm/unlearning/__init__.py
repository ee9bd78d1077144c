"""Language-model (``causal_lm``) unlearning methods: one file per method, one registry.

Importing this package registers every method without importing torch or transformers.
To add a method: declare it (params, paper, cost) as an ``LMMethodSpec`` in
``contracts/methods/causal_lm.py`` and list it in ``CAUSAL_LM_METHODS``; write a file here
with an ``LMUnlearningMethod`` subclass that sets ``spec`` and is decorated with
``@register_lm_method``; import it below; and add its small-budget params to ``FAST`` in
``tests/workers/engine/lm/unlearning/test_methods.py``; the shared test then runs it.
"""

from workers.engine.lm.unlearning import (  # noqa: F401  (imported to register)
    grad_diff,
    gradient_ascent,
    idk_dpo,
    idk_nll,
    mudman,
    npo,
    retrain,
    rmu,
    simnpo,
)
from workers.engine.lm.unlearning.base import (
    DEFAULT_IDK_ANSWERS,
    LM_METHODS,
    InvalidMethodParams,
    LMMethodParams,
    LMUnlearnData,
    LMUnlearningDiverged,
    LMUnlearningMethod,
    LMUnlearnResult,
    UnknownMethod,
    UnsupportedRecords,
    describe_lm_methods,
    get_lm_method,
    register_lm_method,
)

__all__ = [
    "DEFAULT_IDK_ANSWERS",
    "LM_METHODS",
    "InvalidMethodParams",
    "LMMethodParams",
    "LMUnlearnData",
    "LMUnlearnResult",
    "LMUnlearningMethod",
    "UnknownMethod",
    "LMUnlearningDiverged",
    "UnsupportedRecords",
    "describe_lm_methods",
    "get_lm_method",
    "register_lm_method",
]
