"""Classifier-unlearning methods: one file per method, one registry.

Importing this package registers every method without importing torch, so the API can
list methods and validate their params. To add a method: write a file with a
``Params`` model and an ``UnlearningMethod`` subclass decorated with ``@register``,
import it below, and it joins the shared test in
``tests/workers/engine/unlearning/test_methods.py`` automatically.
"""

from workers.engine.unlearning import (  # noqa: F401  (imported to register)
    bad_teacher,
    boundary_expanding,
    boundary_shrink,
    finetune,
    gradient_ascent,
    l1_sparse,
    neggrad_plus,
    opc,
    random_label,
    retrain,
    salun,
    scrub,
    slug,
    ssd,
)
from workers.engine.unlearning.base import (
    METHODS,
    ForgetLossParams,
    ForgetScope,
    InvalidMethodParams,
    IterativeParams,
    MethodParams,
    UnknownMethod,
    UnlearnData,
    UnlearningDiverged,
    UnlearningMethod,
    UnlearnResult,
    UnsupportedScope,
    describe_methods,
    get_method,
    register,
)

__all__ = [
    "METHODS",
    "ForgetLossParams",
    "ForgetScope",
    "InvalidMethodParams",
    "IterativeParams",
    "MethodParams",
    "UnknownMethod",
    "UnlearnData",
    "UnlearnResult",
    "UnlearningDiverged",
    "UnlearningMethod",
    "UnsupportedScope",
    "describe_methods",
    "get_method",
    "register",
]
