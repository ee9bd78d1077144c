"""Classifier-unlearning methods: one file per method, one registry of implementations.

What each method is (params, paper, scopes, cost model) is declared in
``contracts.methods.classifier``. To add a method: declare it there, write a file here
with an ``UnlearningMethod`` subclass whose ``spec`` is that declaration, decorated with
``@register``, import it below, and add its small-budget params to ``FAST`` in
``tests/workers/engine/unlearning/test_methods.py`` (which fails while a declaration has
no implementation or the other way round). Importing this package loads no torch.
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
    ClassifierScope,
    ForgetLossParams,
    InvalidMethodParams,
    IterativeParams,
    MethodParams,
    UnknownMethod,
    UnlearnData,
    UnlearningDiverged,
    UnlearningMethod,
    UnlearnResult,
    UnsupportedScope,
    get_method,
    register,
)

__all__ = [
    "METHODS",
    "ClassifierScope",
    "ForgetLossParams",
    "InvalidMethodParams",
    "IterativeParams",
    "MethodParams",
    "UnknownMethod",
    "UnlearnData",
    "UnlearnResult",
    "UnlearningDiverged",
    "UnlearningMethod",
    "UnsupportedScope",
    "get_method",
    "register",
]
